import { afterEach, describe, expect, it } from '@jest/globals';
import { closeAll, health, put, serviceCheck, startServer } from './helpers.js';

afterEach(closeAll);

describe('service registration through the official consul client', () => {
  it('registers, lists and deregisters a service (round trip)', async () => {
    const { url, consul } = await startServer();
    await consul.agent.service.register({
      name: 'users',
      id: 'users-1',
      address: '10.0.0.7',
      port: 4000,
      tags: ['http', 'v1'],
      meta: { version: '1.2.0' },
      check: { ttl: '10s', status: 'passing' } as never,
    });

    const listed = (await consul.health.service({ service: 'users', passing: true })) as {
      Service: { ID: string; Service: string; Address: string; Port: number; Tags: string[]; Meta: object };
      Node: { Node: string; Datacenter: string };
      Checks: { CheckID: string; Status: string }[];
    }[];
    expect(listed).toHaveLength(1);
    expect(listed[0]?.Service).toMatchObject({
      ID: 'users-1',
      Service: 'users',
      Address: '10.0.0.7',
      Port: 4000,
      Tags: ['http', 'v1'],
      Meta: { version: '1.2.0' },
      Weights: { Passing: 1, Warning: 1 },
    });
    expect(listed[0]?.Node).toMatchObject({ Node: 'trellis', Datacenter: 'dc1' });
    // Consul lists the node's serfHealth check first in every entry, always passing.
    expect(listed[0]?.Checks.map((c) => [c.CheckID, c.Status])).toEqual([
      ['serfHealth', 'passing'],
      ['service:users-1', 'passing'],
    ]);

    await consul.agent.service.deregister('users-1');
    expect(await consul.health.service({ service: 'users' })).toEqual([]);
    expect((await health(url, 'users')).entries).toEqual([]);
  });

  it('defaults the service ID to its Name, and names the check service:<ID>', async () => {
    const { url, consul } = await startServer();
    await consul.agent.service.register({ name: 'mail', port: 25, check: { ttl: '5s' } as never });

    const { entries } = await health(url, 'mail');
    expect(entries.map((e) => e.Service.ID)).toEqual(['mail']);
    expect(serviceCheck(entries[0])).toMatchObject({
      CheckID: 'service:mail',
      Name: "Service 'mail' check",
      ServiceID: 'mail',
      Type: 'ttl',
    });
  });

  it('replaces a service registered again under the same ID', async () => {
    const { url, consul } = await startServer();
    await consul.agent.service.register({ name: 'users', id: 'u1', port: 4000, tags: ['old'] });
    await consul.agent.service.register({ name: 'users', id: 'u1', port: 4001, tags: ['new'] });
    await consul.agent.service.register({ name: 'users', id: 'u2', port: 4002 });

    const { entries } = await health(url, 'users');
    expect(entries.map((e) => [e.Service.ID, e.Service.Port, e.Service.Tags])).toEqual([
      ['u1', 4001, ['new']],
      ['u2', 4002, []],
    ]);
  });

  it('keeps the status of an existing check when the service registers again', async () => {
    const { url, consul } = await startServer();
    await consul.agent.service.register({ name: 'users', check: { ttl: '10s' } as never });
    await consul.agent.check.pass({ id: 'service:users', note: 'ok' });
    await consul.agent.service.register({ name: 'users', port: 9, check: { ttl: '10s' } as never });

    expect(serviceCheck((await health(url, 'users')).entries[0])).toMatchObject({ Status: 'passing', Output: 'ok' });
  });

  it('accepts keys in any case and snake_case, as Consul does', async () => {
    const { url } = await startServer();
    const body = {
      NAME: 'chat',
      id: 'chat-1',
      PoRt: 7000,
      weights: { passing: 5, WARNING: 2 },
      check: { ttl: '10s', STATUS: 'warning', check_id: 'chat-alive', notes: 'heartbeat' },
    };
    expect((await put(`${url}/v1/agent/service/register`, JSON.stringify(body))).status).toBe(200);

    const { entries } = await health(url, 'chat');
    expect(entries[0]?.Service).toMatchObject({ ID: 'chat-1', Port: 7000, Weights: { Passing: 5, Warning: 2 } });
    expect(serviceCheck(entries[0])).toMatchObject({ CheckID: 'chat-alive', Status: 'warning', Notes: 'heartbeat' });
  });

  it('answers 404 with Consul text for deregistering an unknown service ID', async () => {
    const { url, consul } = await startServer();
    const reply = await put(`${url}/v1/agent/service/deregister/nope`);
    expect(reply.status).toBe(404);
    expect(reply.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(reply.text).toContain('Unknown service ID "nope"');
    await expect(consul.agent.service.deregister('nope')).rejects.toHaveProperty('statusCode', 404);
  });

  it('answers 404 for unknown routes and 405 for a known route with another method', async () => {
    const { url } = await startServer();
    const unknown = await fetch(`${url}/v1/agent/nothing-here`);
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('content-type')).toMatch(/^text\/plain/);
    await unknown.body?.cancel();

    const wrongMethod = await fetch(`${url}/v1/agent/service/register`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('PUT');
    await wrongMethod.body?.cancel();
  });

  it('filters by ?tag, as Consul does', async () => {
    const { url, consul } = await startServer();
    await consul.agent.service.register({ name: 'users', id: 'a', tags: ['blue', 'http'] });
    await consul.agent.service.register({ name: 'users', id: 'b', tags: ['green', 'http'] });

    expect((await health(url, 'users', '?tag=http&tag=blue')).entries.map((e) => e.Service.ID)).toEqual(['a']);
    expect((await health(url, 'users', '?tag=http')).entries.map((e) => e.Service.ID)).toEqual(['a', 'b']);
  });
});
