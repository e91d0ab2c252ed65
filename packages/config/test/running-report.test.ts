import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ConfigError, ManualClock } from '@trellis/core';
import { ConsulKv, RunningReport } from '@trellis/config';
import type { RegistryServer } from '@trellis/registry-server';
import { startServer } from './helpers.js';

describe('RunningReport', () => {
  let serverClock: ManualClock;
  let clock: ManualClock;
  let server: RegistryServer;
  let kv: ConsulKv;
  const reports: RunningReport[] = [];

  beforeEach(async () => {
    serverClock = new ManualClock();
    clock = new ManualClock();
    const started = await startServer(serverClock);
    server = started.server;
    kv = new ConsulKv({ url: started.url });
  });
  afterEach(async () => {
    await Promise.all(reports.splice(0).map((r) => r.close()));
    await kv.close();
    await server.close();
  });

  function report(instance: string, service = 'forum'): RunningReport {
    const made = new RunningReport({
      kv,
      service,
      instance,
      ttlMs: 10_000,
      debounceMs: 50,
      clock,
      now: () => Date.UTC(2026, 11, 2, 5),
      logger: { warn: () => undefined },
    });
    reports.push(made);
    return made;
  }

  it('appears under a session, writes a burst of changes once, and disappears on close()', async () => {
    const forum1 = report('forum-1');
    await forum1.flush();
    const first = await kv.get('trellis/running/forum-1');
    expect(first?.session).toEqual(expect.any(String));
    expect(JSON.parse(first?.value ?? '')).toEqual({
      service: 'forum',
      instance: 'forum-1',
      time: '2026-12-02T05:00:00.000Z',
      rules: {},
      refused: {},
    });

    forum1.set('users', { version: 7 });
    forum1.set('users', { version: 7, dryRun: 8 });
    forum1.set('forum', { version: 3 });
    forum1.set('mail', {
      version: 2,
      refused: { version: 3, field: 'client.retry.maxAttempts', problem: 'too small' },
    });
    clock.advance(49);
    await forum1.flush(); // nothing was due yet, but flush writes what is pending: one write
    const second = await kv.get('trellis/running/forum-1');
    // Every KV write moves the index by one: the four set() calls made one write.
    expect(second?.modifyIndex).toBe((first?.modifyIndex ?? 0) + 1);
    clock.advance(50);
    await forum1.flush();
    expect((await kv.get('trellis/running/forum-1'))?.modifyIndex).toBe(second?.modifyIndex);

    expect(await RunningReport.list(kv, { service: 'forum' })).toEqual([
      {
        service: 'forum',
        instance: 'forum-1',
        time: '2026-12-02T05:00:00.000Z',
        rules: { forum: { version: 3 }, mail: { version: 2 }, users: { version: 7, dryRun: 8 } },
        refused: { mail: { version: 3, field: 'client.retry.maxAttempts', problem: 'too small' } },
      },
    ]);

    await forum1.close();
    expect(await kv.get('trellis/running/forum-1')).toBeUndefined();
    expect(await kv.renewSession(first?.session ?? '')).toBe(false);
  });

  it('writes after the debounce on its own', async () => {
    const forum1 = report('forum-1');
    await forum1.flush();
    const before = await kv.get('trellis/running/forum-1');
    forum1.set('users', { version: 1 });
    clock.advance(50); // the debounce fires and enqueues the write; flush waits for it
    await forum1.flush();
    const after = await kv.get('trellis/running/forum-1');
    expect(after?.modifyIndex).toBe((before?.modifyIndex ?? 0) + 1);
    expect(JSON.parse(after?.value ?? '').rules).toEqual({ users: { version: 1 } });
  });

  it('lists every instance in one read, filtered by service', async () => {
    const reportsMade = [report('forum-2'), report('forum-1'), report('users-1', 'users')];
    for (const r of reportsMade) await r.flush();
    expect((await RunningReport.list(kv)).map((s) => s.instance)).toEqual(['forum-1', 'forum-2', 'users-1']);
    expect((await RunningReport.list(kv, { service: 'forum' })).map((s) => s.instance)).toEqual(['forum-1', 'forum-2']);
  });

  it('stays while renewed, and disappears on its own once its session is not renewed', async () => {
    const forum1 = report('forum-1');
    await forum1.flush();
    // Consul ends a session up to twice its TTL after the last renewal: at 20 s here.
    await serverClock.advanceAsync(15_000);
    clock.advance(5_000); // the report renews at half its TTL
    await forum1.flush();
    await serverClock.advanceAsync(15_000); // 30 s: alive only thanks to the renewal at 15 s
    expect(await kv.get('trellis/running/forum-1')).toBeDefined();
    // No more renewals (the report's clock stands still, as a hung process's would).
    await serverClock.advanceAsync(20_001);
    expect(await kv.get('trellis/running/forum-1')).toBeUndefined();
  });

  it('refuses a TTL Consul would refuse', () => {
    expect(() => new RunningReport({ kv, service: 'forum', instance: 'x', ttlMs: 5_000 })).toThrow(ConfigError);
    expect(() => new RunningReport({ kv, service: 'forum', instance: 'a/b' })).toThrow(ConfigError);
  });
});
