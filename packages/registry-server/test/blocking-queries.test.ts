import { ManualClock } from '@trellis/core';
import { closeAll, get, health, put, startServer, type Running } from './helpers.js';

// Consul's long polling: ?index=N holds a read until what it reads changes after N.
describe('blocking queries', () => {
  let clock: ManualClock;
  let running: Running;

  beforeEach(async () => {
    clock = new ManualClock();
    running = await startServer(clock);
  });
  afterEach(closeAll);

  const register = (name: string, id: string, tags: string[] = []): Promise<unknown> =>
    put(`${running.url}/v1/agent/service/register`, JSON.stringify({ Name: name, ID: id, Port: 1, Tags: tags }));

  /** Resolves once the server holds `count` reads: the moment to make the change they wait for. */
  async function held(count: number): Promise<void> {
    for (let i = 0; i < 10_000 && running.server.heldQueries < count; i++) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(running.server.heldQueries).toBe(count);
  }

  it('holds health/service until that service changes, then answers with a later index', async () => {
    await register('users', 'users-1');
    const { index } = await health(running.url, 'users');
    const pending = health(running.url, 'users', `?index=${index}`);
    await held(1);
    await register('users', 'users-2');
    const answer = await pending;
    expect(answer.index).toBeGreaterThan(index);
    expect(answer.entries.map((e) => e.Service.ID)).toEqual(['users-1', 'users-2']);
    expect(running.server.heldQueries).toBe(0);
  });

  it('is not woken by changes to other services, and answers unchanged when the wait runs out', async () => {
    await register('users', 'users-1');
    const { index } = await health(running.url, 'users');
    const pending = health(running.url, 'users', `?index=${index}&wait=10s`);
    await held(1);
    await register('mail', 'mail-1');
    await put(`${running.url}/v1/agent/check/pass/service:users-1`);
    expect(running.server.heldQueries).toBe(1);
    // 10 s plus the largest jitter, a sixteenth of the wait.
    clock.advance(10_000 + 10_000 / 16);
    const answer = await pending;
    expect(answer.entries.map((e) => e.Service.ID)).toEqual(['users-1']);
  });

  it('wakes on a check turning critical when its TTL expires', async () => {
    await put(
      `${running.url}/v1/agent/service/register`,
      JSON.stringify({ Name: 'users', ID: 'users-1', Check: { TTL: '5s', Status: 'passing' } }),
    );
    const { index } = await health(running.url, 'users', '?passing');
    const pending = health(running.url, 'users', `?passing&index=${index}`);
    await held(1);
    clock.advance(5_000);
    expect((await pending).entries).toEqual([]);
  });

  it('answers a service with its own index, so that changes elsewhere do not end its next wait', async () => {
    await register('users', 'users-1');
    const first = await health(running.url, 'users');
    await register('mail', 'mail-1');
    await put(`${running.url}/v1/agent/check/fail/service:mail-1`);
    const again = await health(running.url, 'users');
    expect(again.index).toBe(first.index);
    const pending = health(running.url, 'users', `?index=${again.index}`);
    await held(1);
    await register('users', 'users-2');
    expect((await pending).index).toBeGreaterThan(first.index);
  });

  it('wakes watchers of both names when a service id is re-registered under another name', async () => {
    await register('users', 'x-1');
    const users = await health(running.url, 'users');
    const mail = await health(running.url, 'mail');
    const pendingUsers = health(running.url, 'users', `?index=${users.index}`);
    const pendingMail = health(running.url, 'mail', `?index=${mail.index}`);
    await held(2);
    await register('mail', 'x-1');
    expect((await pendingUsers).entries).toEqual([]);
    expect((await pendingMail).entries.map((e) => e.Service.ID)).toEqual(['x-1']);
  });

  it('answers at once when the index has already moved on, or is 0 or absent', async () => {
    await register('users', 'users-1');
    const first = await health(running.url, 'users');
    await register('users', 'users-2');
    const answers = await Promise.all([
      health(running.url, 'users', `?index=${first.index}`),
      health(running.url, 'users', '?index=0'),
      health(running.url, 'users', '?wait=1s'),
    ]);
    expect(answers.map((a) => a.entries.length)).toEqual([2, 2, 2]);
    expect(running.server.heldQueries).toBe(0);
  });

  it('caps the wait at 10 minutes', async () => {
    const { index } = await health(running.url, 'users');
    const pending = health(running.url, 'users', `?index=${index}&wait=1h`);
    await held(1);
    clock.advance(10 * 60_000 + (10 * 60_000) / 16);
    expect((await pending).index).toBe(index);
  });

  it('holds catalog/services until any service changes', async () => {
    await register('users', 'users-1', ['http']);
    const before = await get(`${running.url}/v1/catalog/services`);
    expect(JSON.parse(before.text)).toEqual({ consul: [], users: ['http'] });
    const pending = get(`${running.url}/v1/catalog/services?index=${before.headers.get('x-consul-index')}`);
    await held(1);
    await register('mail', 'mail-1', ['smtp', 'http']);
    const after = await pending;
    expect(JSON.parse(after.text)).toEqual({ consul: [], mail: ['http', 'smtp'], users: ['http'] });
    expect(Number(after.headers.get('x-consul-index'))).toBeGreaterThan(Number(before.headers.get('x-consul-index')));
  });

  it('refuses a malformed index or wait with 400 naming it', async () => {
    for (const [q, message] of [
      ['?index=abc', 'Invalid index: "abc" is not a non-negative integer'],
      ['?index=-1', 'Invalid index: "-1" is not a non-negative integer'],
      ['?index=5&wait=soon', 'Invalid wait time: "soon" is not a duration like "30s" or "5m"'],
      ['?index=5&wait=-1s', 'Invalid wait time: "-1s" is negative'],
    ] as const) {
      const reply = await get(`${running.url}/v1/health/service/users${q}`);
      expect([reply.status, reply.text]).toEqual([400, message]);
    }
  });

  it('answers held reads when the server closes', async () => {
    const { index } = await health(running.url, 'users');
    const pending = health(running.url, 'users', `?index=${index}`);
    await held(1);
    await running.server.close();
    expect((await pending).index).toBe(index);
  });

  it('lets the official client watch a service', async () => {
    await register('users', 'users-1');
    const watch = running.consul.watch({
      method: running.consul.health.service,
      options: { service: 'users' },
    });
    const seen: number[] = [];
    const done = new Promise<void>((resolve, reject) => {
      watch.on('error', reject);
      watch.on('change', (entries: unknown[]) => {
        seen.push(entries.length);
        if (entries.length === 1) void register('users', 'users-2');
        if (entries.length === 2) resolve();
      });
    });
    try {
      await done;
      expect(seen).toEqual([1, 2]);
    } finally {
      watch.end();
    }
  });
});
