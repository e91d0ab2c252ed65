import { afterEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '@trellis/core';
import { closeAll, health, put, startServer } from './helpers.js';

afterEach(closeAll);

describe('X-Consul-Index and the other Consul headers of health/service', () => {
  it('is never 0, even before anything is registered, and comes with KnownLeader and LastContact', async () => {
    const { url } = await startServer();
    const { entries, index, headers } = await health(url, 'nobody');
    expect(entries).toEqual([]);
    expect(index).toBeGreaterThan(0);
    expect(headers.get('x-consul-knownleader')).toBe('true');
    expect(headers.get('x-consul-lastcontact')).toBe('0');
    expect(headers.get('content-type')).toMatch(/^application\/json/);
  });

  it('increases on every change of state', async () => {
    const clock = new ManualClock();
    const { url, consul } = await startServer(clock);
    const seen = [(await health(url, 'users')).index];
    const step = async (change: () => unknown): Promise<void> => {
      await change();
      seen.push((await health(url, 'users')).index);
    };

    await step(() => consul.agent.service.register({ name: 'users', check: { ttl: '10s' } as never }));
    await step(() => consul.agent.check.pass({ id: 'service:users' }));
    await step(() => consul.agent.check.pass({ id: 'service:users', note: 'new output' }));
    await step(() => consul.agent.service.register({ name: 'users', port: 81, check: { ttl: '10s' } as never }));
    await step(() => clock.advance(10_000)); // TTL expired
    await step(() => consul.agent.service.deregister('users'));

    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThan(seen[i - 1] as number);
  });

  it('stays the same for a pass that changes neither status nor output, and for an identical registration', async () => {
    const { url, consul } = await startServer(new ManualClock());
    const registration = { name: 'users', port: 80, tags: ['a'], check: { ttl: '10s' } as never };
    await consul.agent.service.register(registration);
    await consul.agent.check.pass({ id: 'service:users', note: 'ok' });
    const before = (await health(url, 'users')).index;

    await consul.agent.check.pass({ id: 'service:users', note: 'ok' });
    await consul.agent.service.register(registration);
    expect((await health(url, 'users')).index).toBe(before);
  });

  it('restarts the TTL on a no-op pass even though the index stays', async () => {
    const clock = new ManualClock();
    const { url, consul } = await startServer(clock);
    await consul.agent.service.register({ name: 'users', check: { ttl: '10s', status: 'passing' } as never });
    const before = (await health(url, 'users')).index;

    clock.advance(8_000);
    await consul.agent.check.pass({ id: 'service:users' });
    clock.advance(8_000);
    const after = await health(url, 'users', '?passing');
    expect(after.entries).toHaveLength(1);
    expect(after.index).toBe(before);
  });

  it('does not move on a rejected request', async () => {
    const { url } = await startServer();
    const before = (await health(url, 'users')).index;
    expect((await put(`${url}/v1/agent/service/register`, '{"Name":"users","Port":-1}')).status).toBe(400);
    expect((await put(`${url}/v1/agent/check/pass/nope`)).status).toBe(404);
    expect((await health(url, 'users')).index).toBe(before);
  });
});
