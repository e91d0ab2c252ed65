import { afterEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '@trellis/core';
import { closeAll, health, put, serviceCheck, startServer } from './helpers.js';

afterEach(closeAll);

describe('TTL checks', () => {
  it('starts a new check critical, and lists the service as passing only once it is passed', async () => {
    const { url, consul } = await startServer(new ManualClock());
    await consul.agent.service.register({ name: 'users', check: { ttl: '10s' } as never });

    expect(serviceCheck((await health(url, 'users')).entries[0])?.Status).toBe('critical');
    expect(await consul.health.service({ service: 'users', passing: true })).toEqual([]);

    await consul.agent.check.pass({ id: 'service:users' });
    expect((await health(url, 'users', '?passing')).entries.map((e) => e.Service.ID)).toEqual(['users']);
  });

  it('starts a new check with the Status the registration gives', async () => {
    const { url, consul } = await startServer(new ManualClock());
    await consul.agent.service.register({ name: 'users', check: { ttl: '10s', status: 'passing' } as never });
    expect((await health(url, 'users', '?passing=true')).entries).toHaveLength(1);
  });

  it('sets status and Output with pass, warn and fail and their ?note', async () => {
    const { url, consul } = await startServer(new ManualClock());
    await consul.agent.service.register({ name: 'users', check: { ttl: '10s' } as never });
    const check = async (): Promise<unknown> => {
      const entry = (await health(url, 'users')).entries[0];
      return [serviceCheck(entry)?.Status, serviceCheck(entry)?.Output];
    };

    await consul.agent.check.pass({ id: 'service:users', note: 'all good' });
    expect(await check()).toEqual(['passing', 'all good']);
    await consul.agent.check.warn({ id: 'service:users', note: 'disk 91%' });
    expect(await check()).toEqual(['warning', 'disk 91%']);
    // A warning entry is not "passing": ?passing wants every check passing.
    expect((await health(url, 'users', '?passing=1')).entries).toEqual([]);
    expect((await health(url, 'users', '?passing=false')).entries).toHaveLength(1);
    await consul.agent.check.fail({ id: 'service:users', note: 'db down' });
    expect(await check()).toEqual(['critical', 'db down']);
    await consul.agent.check.pass('service:users');
    expect(await check()).toEqual(['passing', '']);
  });

  it('answers 404 with Consul text for an unknown check ID', async () => {
    const { url, consul } = await startServer();
    for (const verb of ['pass', 'warn', 'fail']) {
      const reply = await put(`${url}/v1/agent/check/${verb}/users`);
      expect(reply.status).toBe(404);
      expect(reply.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(reply.text).toBe('Unknown check ID "users". Ensure that the check ID is passed, not the check name.');
    }
    await expect(consul.agent.check.pass({ id: 'nope' })).rejects.toHaveProperty('statusCode', 404);
  });

  it('turns a check critical with Output "TTL expired" when no pass comes within its TTL', async () => {
    const clock = new ManualClock();
    const { url, consul } = await startServer(clock);
    await consul.agent.service.register({ name: 'users', check: { ttl: '10s', status: 'passing' } as never });

    clock.advance(9_000);
    await consul.agent.check.pass({ id: 'service:users' });
    clock.advance(9_000); // 18 s after registration, 9 s after the pass: still alive
    expect(serviceCheck((await health(url, 'users')).entries[0])?.Status).toBe('passing');

    clock.advance(1_000);
    expect(serviceCheck((await health(url, 'users')).entries[0])).toMatchObject({
      Status: 'critical',
      Output: 'TTL expired',
    });
    expect((await health(url, 'users', '?passing')).entries).toEqual([]);

    await consul.agent.check.pass({ id: 'service:users' });
    expect((await health(url, 'users', '?passing')).entries).toHaveLength(1);
  });

  it('repeats the last note after "TTL expired", as Consul does', async () => {
    const clock = new ManualClock();
    const { url, consul } = await startServer(clock);
    await consul.agent.service.register({ name: 'users', check: { ttl: '1m30s' } as never });
    await consul.agent.check.pass({ id: 'service:users', note: 'served 12 calls' });

    clock.advance(90_000);
    expect(serviceCheck((await health(url, 'users')).entries[0])?.Output).toBe(
      'TTL expired (last output before timeout follows): served 12 calls',
    );
  });

  it('removes a service whose check stays critical for DeregisterCriticalServiceAfter', async () => {
    const clock = new ManualClock();
    const { url, consul } = await startServer(clock);
    await consul.agent.service.register({
      name: 'users',
      check: { ttl: '10s', status: 'passing', deregistercriticalserviceafter: '1m' } as never,
    });

    clock.advance(10_000); // expired: critical from now on
    clock.advance(59_000);
    expect((await health(url, 'users')).entries).toHaveLength(1);

    clock.advance(1_000);
    expect((await health(url, 'users')).entries).toEqual([]);
    await expect(consul.agent.check.pass({ id: 'service:users' })).rejects.toHaveProperty('statusCode', 404);
  });

  it('does not remove a service whose critical check recovers in time', async () => {
    const clock = new ManualClock();
    const { url, consul } = await startServer(clock);
    await consul.agent.service.register({
      name: 'users',
      check: { ttl: '10s', deregistercriticalserviceafter: '30s' } as never,
    });

    clock.advance(25_000); // critical since registration, 5 s short of the limit
    await consul.agent.check.pass({ id: 'service:users' });
    clock.advance(9_000);
    expect(serviceCheck((await health(url, 'users')).entries[0])?.Status).toBe('passing');

    clock.advance(1_000 + 29_000); // expired at 35 s, critical for 29 s
    expect((await health(url, 'users')).entries).toHaveLength(1);
    clock.advance(1_000);
    expect((await health(url, 'users')).entries).toEqual([]);
  });
});
