import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ConfigError } from '@trellis/core';
import { ConsulKv, RuleStore, RulesConflictError, rulesHistoryKey } from '@trellis/config';
import type { RegistryServer } from '@trellis/registry-server';
import { startServer } from './helpers.js';
import { ana, validate, type TestRules } from './rules-fixtures.js';

describe('RuleStore', () => {
  let server: RegistryServer;
  let kv: ConsulKv;
  let store: RuleStore<TestRules>;
  let time: number;

  beforeEach(async () => {
    const started = await startServer();
    server = started.server;
    kv = new ConsulKv({ url: started.url });
    time = Date.UTC(2026, 11, 2, 4, 30);
    store = new RuleStore({ kv, validate, now: () => (time += 1_000) });
  });
  afterEach(async () => {
    await kv.close();
    await server.close();
  });

  const retry = (maxAttempts: number): TestRules => ({ client: { retry: { maxAttempts } } });

  it('writes each change as a new version with author, reason and time, live and in the history', async () => {
    expect(await store.get('forum')).toBeUndefined();
    const v1 = await store.set('forum', retry(2), { author: 'ana', reason: 'first' });
    expect(v1).toEqual({
      version: 1,
      author: 'ana',
      reason: 'first',
      time: '2026-12-02T04:30:01.000Z',
      rules: retry(2),
    });
    const v2 = await store.set('forum', retry(3), { author: 'bo', reason: 'more retries' });
    expect(v2.version).toBe(2);
    expect(await store.get('forum')).toEqual(v2);
    expect(JSON.parse((await kv.get('trellis/rules/forum'))?.value ?? '')).toEqual(v2);
    expect(await kv.keys('trellis/rules-history/forum/')).toEqual([
      'trellis/rules-history/forum/0000000001',
      'trellis/rules-history/forum/0000000002',
    ]);
    expect((await store.history('forum')).map((e) => [e.version, e.reason])).toEqual([
      [2, 'more retries'],
      [1, 'first'],
    ]);
    expect(await store.history('forum', { limit: 1 })).toEqual([v2]);
  });

  it('refuses invalid rules or a missing reason before writing anything, naming the field', async () => {
    await store.set('forum', retry(2), ana);
    await expect(store.set('forum', retry(0), ana)).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
      field: 'client.retry.maxAttempts',
    });
    await expect(store.set('forum', { client: { retyr: {} } }, ana)).rejects.toMatchObject({ field: 'client.retyr' });
    await expect(store.set('forum', retry(3), { author: 'ana', reason: ' ' })).rejects.toMatchObject({
      field: 'reason',
    });
    await expect(store.set('bad/name', retry(3), ana)).rejects.toMatchObject({ field: 'service' });
    expect((await store.get('forum'))?.version).toBe(1);
    expect(await store.history('forum')).toHaveLength(1);
  });

  it('keeps the last `keep` versions, and versions go on after the live key is deleted', async () => {
    const small = new RuleStore({ kv, validate, keep: 3 });
    for (let n = 1; n <= 5; n++) await small.set('forum', retry(n), ana);
    expect((await small.history('forum')).map((e) => e.version)).toEqual([5, 4, 3]);
    await kv.delete('trellis/rules/forum');
    expect((await small.set('forum', retry(6), ana)).version).toBe(6);
    expect((await small.history('forum')).map((e) => e.version)).toEqual([6, 5, 4]);
  });

  it('rolls back to the version before the live one, or to a given one, as a new version', async () => {
    for (let n = 1; n <= 4; n++) await store.set('forum', retry(n), ana);
    const back = await store.rollback('forum', { author: 'ana', reason: 'v4 is broken' });
    expect(back).toMatchObject({ version: 5, reason: 'v4 is broken', rules: retry(3) });
    expect((await store.get('forum'))?.rules).toEqual(retry(3));
    // From version 5 (a copy of 3), "the one before" is 4.
    expect((await store.rollback('forum', ana)).rules).toEqual(retry(4));
    expect((await store.rollback('forum', ana, { toVersion: 1 })).rules).toEqual(retry(1));
    await expect(store.rollback('forum', ana, { toVersion: 99 })).rejects.toMatchObject({ field: 'toVersion' });
    await expect(store.rollback('mail', ana)).rejects.toBeInstanceOf(ConfigError);
    expect((await store.get('forum'))?.version).toBe(7);
  });

  it('diffs a candidate against the live rules, field by field', async () => {
    expect(await store.diff('forum', retry(2))).toEqual([
      { path: 'client.retry.maxAttempts', before: undefined, after: 2 },
    ]);
    await store.set(
      'forum',
      {
        client: {
          retry: { maxAttempts: 2 },
          split: [
            { subset: 'stable', weight: 100 },
            { subset: 'canary', weight: 0 },
          ],
        },
      },
      ana,
    );
    const changes = await store.diff('forum', {
      client: {
        split: [
          { subset: 'stable', weight: 90 },
          { subset: 'canary', weight: 10 },
        ],
      },
      limits: { ratePerSecond: 50 },
    });
    expect(changes).toEqual([
      { path: 'client.retry.maxAttempts', before: 2, after: undefined },
      { path: 'client.split[0].weight', before: 100, after: 90 },
      { path: 'client.split[1].weight', before: 0, after: 10 },
      { path: 'limits.ratePerSecond', before: undefined, after: 50 },
    ]);
    await expect(store.diff('forum', retry(11))).rejects.toMatchObject({ field: 'client.retry.maxAttempts' });
  });

  it('sets and clears a dry run, numbered as the version it would become', async () => {
    await store.set('forum', retry(2), ana);
    const dry = await store.setDryRun('forum', retry(5), { author: 'ana', reason: 'try 5' });
    expect(dry).toMatchObject({ version: 2, rules: retry(5), reason: 'try 5' });
    expect(await store.getDryRun('forum')).toEqual(dry);
    expect((await store.get('forum'))?.version).toBe(1);
    await expect(store.setDryRun('forum', retry(0), ana)).rejects.toMatchObject({ field: 'client.retry.maxAttempts' });
    await store.clearDryRun('forum');
    expect(await store.getDryRun('forum')).toBeUndefined();
  });

  it('lets one of two concurrent writers win and refuses the other with RulesConflictError', async () => {
    await store.set('forum', retry(1), ana);
    const otherKv = new ConsulKv({ url: server.address?.url ?? '' });
    const other = new RuleStore({ kv: otherKv, validate });
    try {
      // Both read version 1 before either transaction reaches the registry (each reads twice
      // first, and both first reads leave in this turn), so the second transaction's
      // check-index no longer holds.
      const outcomes = await Promise.allSettled([
        store.set('forum', retry(2), { author: 'ana', reason: 'mine' }),
        other.set('forum', retry(3), { author: 'bo', reason: 'theirs' }),
      ]);
      const won = outcomes.filter((o) => o.status === 'fulfilled');
      const lost = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(lost[0]).toBeInstanceOf(RulesConflictError);
      expect(lost[0]).toMatchObject({ code: 'RULES_CONFLICT', service: 'forum' });
      const live = await store.get('forum');
      expect(live?.version).toBe(2);
      expect(live).toEqual((won[0] as PromiseFulfilledResult<unknown>).value);
      expect(await kv.keys(rulesHistoryKey('forum'))).toHaveLength(2);
    } finally {
      await otherKv.close();
    }
  });

  it('reports a stored document that is not valid, naming the field', async () => {
    await kv.put(
      'trellis/rules/forum',
      '{"version": 1, "author": "ana", "reason": "x", "time": "2026-12-02T04:30:00.000Z", "rules": {"client": {"retry": {"maxAttempts": 0}}}}',
    );
    await expect(store.get('forum')).rejects.toMatchObject({ field: 'client.retry.maxAttempts' });
    await kv.put('trellis/rules/forum', 'not json');
    await expect(store.get('forum')).rejects.toMatchObject({ field: 'trellis/rules/forum' });
    await kv.put('trellis/rules/forum', '{"version": 0, "author": "ana", "reason": "x", "time": "now", "rules": {}}');
    await expect(store.get('forum')).rejects.toMatchObject({ field: 'version' });
  });
});
