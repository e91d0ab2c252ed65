import { afterEach, describe, expect, it } from '@jest/globals';
import Consul from 'consul';
import { ManualClock } from '@trellis/core';
import { RegistryServer } from '@trellis/registry-server';
import { closeAll, get, health, startServer, type Running } from './helpers.js';

afterEach(closeAll);

interface Check {
  CheckID: string;
  Status: string;
  ServiceID: string;
  ServiceName: string;
  Definition: Record<string, unknown>;
}

/** Registers users-1 (passing), users-2 (critical), mail-1 (warning), and a node check "disk" (passing). */
async function populate({ consul }: Running): Promise<void> {
  await consul.agent.service.register({
    name: 'users',
    id: 'users-1',
    tags: ['a'],
    check: { ttl: '10s', status: 'passing' } as never,
  });
  await consul.agent.service.register({
    name: 'users',
    id: 'users-2',
    tags: ['a', 'b'],
    check: { ttl: '10s' } as never,
  });
  await consul.agent.service.register({
    name: 'mail',
    id: 'mail-1',
    check: { ttl: '10s', status: 'warning' } as never,
  });
  await consul.agent.check.register({ name: 'disk', ttl: '1m', status: 'passing' } as never);
}

/** Waits until the server holds `count` blocking queries. */
async function held(running: Running, count: number): Promise<void> {
  for (let i = 0; i < 10_000 && running.server.heldQueries < count; i++) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  expect(running.server.heldQueries).toBe(count);
}

describe('health/checks/:service', () => {
  it('lists the checks of every instance of the service, and [] for an unknown one', async () => {
    const running = await startServer(new ManualClock());
    await populate(running);
    const checks = (await running.consul.health.checks('users')) as unknown as Check[];
    expect(checks.map((c) => [c.CheckID, c.ServiceID, c.ServiceName, c.Status])).toEqual([
      ['service:users-1', 'users-1', 'users', 'passing'],
      ['service:users-2', 'users-2', 'users', 'critical'],
    ]);
    expect(checks[0]?.Definition).toEqual({ TTL: '10s' });
    expect(await running.consul.health.checks('nope')).toEqual([]);
  });

  it('holds a blocking read until a check of that service changes', async () => {
    const running = await startServer(new ManualClock());
    await populate(running);
    const first = await get(`${running.url}/v1/health/checks/users`);
    const pending = get(`${running.url}/v1/health/checks/users?index=${first.headers.get('x-consul-index')}`);
    await held(running, 1);
    await running.consul.agent.check.pass({ id: 'service:mail-1' });
    await running.consul.agent.check.pass({ id: 'disk' });
    expect(running.server.heldQueries).toBe(1);
    await running.consul.agent.check.pass({ id: 'service:users-2' });
    const after = JSON.parse((await pending).text) as Check[];
    expect(after.map((c) => c.Status)).toEqual(['passing', 'passing']);
  });
});

describe('health/node/:node', () => {
  it("lists serfHealth, the node's checks and its services' checks, and [] for another node", async () => {
    const running = await startServer(new ManualClock());
    await populate(running);
    const checks = (await running.consul.health.node('trellis')) as unknown as Check[];
    expect(checks.map((c) => [c.CheckID, c.ServiceID])).toEqual([
      ['disk', ''],
      ['serfHealth', ''],
      ['service:mail-1', 'mail-1'],
      ['service:users-1', 'users-1'],
      ['service:users-2', 'users-2'],
    ]);
    expect(await running.consul.health.node('elsewhere')).toEqual([]);
  });

  it('lists serfHealth alone on an empty server, and wakes a blocking read on any service change', async () => {
    const running = await startServer(new ManualClock());
    const first = await get(`${running.url}/v1/health/node/trellis`);
    expect((JSON.parse(first.text) as Check[]).map((c) => c.CheckID)).toEqual(['serfHealth']);
    const pending = get(`${running.url}/v1/health/node/trellis?index=${first.headers.get('x-consul-index')}`);
    await held(running, 1);
    await running.consul.agent.service.register({ name: 'mail', check: { ttl: '10s' } as never });
    const after = await pending;
    expect((JSON.parse(after.text) as Check[]).map((c) => c.CheckID)).toEqual(['serfHealth', 'service:mail']);
    expect(Number(after.headers.get('x-consul-index'))).toBeGreaterThan(Number(first.headers.get('x-consul-index')));
  });
});

describe('health/state/:state', () => {
  it('lists the checks in a state, serfHealth included, and every check for "any"', async () => {
    const running = await startServer(new ManualClock());
    await populate(running);
    const ids = async (state: 'any' | 'passing' | 'warning' | 'critical'): Promise<string[]> =>
      ((await running.consul.health.state(state)) as unknown as Check[]).map((c) => c.CheckID);
    expect(await ids('passing')).toEqual(['disk', 'serfHealth', 'service:users-1']);
    expect(await ids('warning')).toEqual(['service:mail-1']);
    expect(await ids('critical')).toEqual(['service:users-2']);
    expect(await ids('any')).toHaveLength(5);
  });

  it('answers [] when no check is in the state, and 400 for an unknown state', async () => {
    const running = await startServer(new ManualClock());
    expect(await running.consul.health.state('critical')).toEqual([]);
    const reply = await get(`${running.url}/v1/health/state/broken`);
    expect([reply.status, reply.text]).toEqual([
      400,
      'Invalid check state "broken": use any, passing, warning or critical',
    ]);
  });

  it('wakes a blocking read when a check changes state', async () => {
    const clock = new ManualClock();
    const running = await startServer(clock);
    await running.consul.agent.service.register({ name: 'users', check: { ttl: '10s', status: 'passing' } as never });
    const first = await get(`${running.url}/v1/health/state/critical`);
    expect(JSON.parse(first.text)).toEqual([]);
    const pending = get(`${running.url}/v1/health/state/critical?index=${first.headers.get('x-consul-index')}`);
    await held(running, 1);
    clock.advance(10_000); // the TTL runs out
    expect((JSON.parse((await pending).text) as Check[]).map((c) => c.CheckID)).toEqual(['service:users']);
  });
});

describe('?node-meta', () => {
  it('keeps entries only when the node has every key:value given', async () => {
    const server = new RegistryServer({
      logLevel: 'silent',
      clock: new ManualClock(),
      nodeMeta: { rack: 'r1', zone: 'a' },
    });
    try {
      const { url, port } = await server.listen({ port: 0 });
      const consul = new Consul({ host: '127.0.0.1', port });
      await consul.agent.service.register({ name: 'users', check: { ttl: '10s' } as never });
      const count = async (path: string): Promise<number> =>
        (JSON.parse((await get(`${url}${path}`)).text) as unknown[]).length;

      expect(await count('/v1/health/service/users?node-meta=rack:r1')).toBe(1);
      expect(await count('/v1/health/service/users?node-meta=rack:r1&node-meta=zone:a')).toBe(1);
      expect(await count('/v1/health/service/users?node-meta=rack:r1&node-meta=zone:b')).toBe(0);
      expect(await count('/v1/health/service/users?node-meta=rack:r2')).toBe(0);
      expect(await count('/v1/health/service/users?node-meta=consul-network-segment:')).toBe(1);
      expect(await count('/v1/health/service/users?node-meta=missing:x')).toBe(0);
      expect(await count('/v1/health/checks/users?node-meta=rack:r2')).toBe(0);
      expect(await count('/v1/health/state/any?node-meta=rack:r1')).toBe(2);
      expect(await count('/v1/health/state/any?node-meta=rack:r2')).toBe(0);
      expect(await count('/v1/catalog/service/users?node-meta=zone:a')).toBe(1);
      expect(await count('/v1/catalog/nodes?node-meta=zone:b')).toBe(0);
      const nodes = (await consul.catalog.node.list()) as { Meta: Record<string, string> }[];
      expect(nodes[0]?.Meta).toEqual({ 'consul-network-segment': '', rack: 'r1', zone: 'a' });
    } finally {
      await server.close();
    }
  });

  it('is the default node meta on a default server, so the filter Consul tools send matches', async () => {
    const { url } = await startServer();
    const entries = (await health(url, 'users', '?node-meta=consul-network-segment:')).entries;
    expect(entries).toEqual([]);
    const nodes = JSON.parse(
      (await get(`${url}/v1/catalog/nodes?node-meta=consul-network-segment:`)).text,
    ) as unknown[];
    expect(nodes).toHaveLength(1);
  });

  it('refuses node meta Consul would refuse, naming the option', () => {
    expect(() => new RegistryServer({ nodeMeta: { 'a.b': 'x' } })).toThrow('nodeMeta');
    expect(() => new RegistryServer({ nodeMeta: { 'consul-x': 'x' } })).toThrow('nodeMeta');
  });
});

describe('checks of the node in health/service', () => {
  it('lists them in every entry, and lets ?passing drop every service while one is not passing', async () => {
    const running = await startServer(new ManualClock());
    await running.consul.agent.service.register({
      name: 'users',
      id: 'users-1',
      check: { ttl: '10s', status: 'passing' } as never,
    });
    await running.consul.agent.check.register({ name: 'disk', ttl: '1m', status: 'passing' } as never);
    const first = await health(running.url, 'users', '?passing');
    expect(first.entries[0]?.Checks.map((c) => c.CheckID)).toEqual(['disk', 'serfHealth', 'service:users-1']);

    // A held read of the service wakes when a check of the node changes.
    const pending = health(running.url, 'users', `?passing&index=${first.index}`);
    await held(running, 1);
    await running.consul.agent.check.fail({ id: 'disk', note: 'disk full' });
    expect((await pending).entries).toEqual([]);
    expect((await health(running.url, 'users')).entries).toHaveLength(1);
  });
});
