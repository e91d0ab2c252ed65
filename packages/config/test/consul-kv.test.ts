import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ConfigError, RegistryUnavailableError } from '@trellis/core';
import { ConsulKv, KvTooLargeError, KvTxnError, maxKvValueBytes } from '@trellis/config';
import type { RegistryServer } from '@trellis/registry-server';
import { startServer } from './helpers.js';

describe('ConsulKv', () => {
  let server: RegistryServer;
  let kv: ConsulKv;

  beforeEach(async () => {
    const started = await startServer();
    server = started.server;
    kv = new ConsulKv({ url: started.url });
  });
  afterEach(async () => {
    await kv.close();
    await server.close();
  });

  it('puts, gets, lists and deletes keys', async () => {
    expect(await kv.get('config/forum/pageSize')).toBeUndefined();
    expect(await kv.list('config/forum/')).toEqual([]);
    expect(await kv.keys('config/forum/')).toEqual([]);
    expect(await kv.put('config/forum/pageSize', '20')).toBe(true);
    expect(await kv.put('config/forum/title', 'Forum — ünïcode')).toBe(true);
    const entry = await kv.get('config/forum/pageSize');
    expect(entry).toEqual({
      key: 'config/forum/pageSize',
      value: '20',
      modifyIndex: expect.any(Number),
      createIndex: entry?.createIndex,
    });
    expect((await kv.list('config/forum/')).map((e) => [e.key, e.value])).toEqual([
      ['config/forum/pageSize', '20'],
      ['config/forum/title', 'Forum — ünïcode'],
    ]);
    expect(await kv.keys('config/', '/')).toEqual(['config/forum/']);
    expect(await kv.put('config/forum/empty', '')).toBe(true);
    expect((await kv.get('config/forum/empty'))?.value).toBe('');
    expect(await kv.delete('config/forum/', { recurse: true })).toBe(true);
    expect(await kv.list('config/forum/')).toEqual([]);
  });

  it('writes with check-and-set only while the index holds', async () => {
    expect(await kv.put('a', '1', { cas: 0 })).toBe(true);
    expect(await kv.put('a', '2', { cas: 0 })).toBe(false);
    const entry = await kv.get('a');
    expect(await kv.put('a', '3', { cas: entry?.modifyIndex ?? 0 })).toBe(true);
    expect(await kv.put('a', '4', { cas: entry?.modifyIndex ?? 0 })).toBe(false);
    expect((await kv.get('a'))?.value).toBe('3');
    expect(await kv.delete('a', { cas: entry?.modifyIndex ?? 0 })).toBe(false);
    expect(await kv.delete('a', { cas: (await kv.get('a'))?.modifyIndex ?? 0 })).toBe(true);
  });

  it('locks a key for a session, and a session with Behavior "delete" takes its keys with it', async () => {
    const session = await kv.createSession({ name: 'test', ttlMs: 10_000, behavior: 'delete' });
    const other = await kv.createSession({ name: 'other', ttlMs: 10_000 });
    expect(await kv.put('lock', 'mine', { session })).toBe(true);
    expect((await kv.get('lock'))?.session).toBe(session);
    expect(await kv.put('lock', 'theirs', { session: other })).toBe(false);
    expect(await kv.renewSession(session)).toBe(true);
    await kv.destroySession(session);
    expect(await kv.get('lock')).toBeUndefined();
    expect(await kv.renewSession(session)).toBe(false);
    await kv.destroySession(other);
  });

  it('runs a transaction whole, and one that fails changes nothing', async () => {
    await kv.put('rules/live', 'v1');
    const live = await kv.get('rules/live');
    const written = await kv.txn([
      { verb: 'check-index', key: 'rules/live', index: live?.modifyIndex ?? 0 },
      { verb: 'set', key: 'rules/live', value: 'v2' },
      { verb: 'set', key: 'rules/history/2', value: 'v2' },
    ]);
    expect(written.map((e) => e.key)).toEqual(['rules/live', 'rules/live', 'rules/history/2']);
    expect((await kv.get('rules/live'))?.value).toBe('v2');

    // The same check again: the key moved, so the whole transaction rolls back.
    const failed = kv.txn([
      { verb: 'set', key: 'rules/history/3', value: 'v3' },
      { verb: 'check-index', key: 'rules/live', index: live?.modifyIndex ?? 0 },
      { verb: 'set', key: 'rules/live', value: 'v3' },
    ]);
    await expect(failed).rejects.toBeInstanceOf(KvTxnError);
    const error = (await failed.catch((e: unknown) => e)) as KvTxnError;
    expect(error.code).toBe('KV_TXN_FAILED');
    expect(error.errors).toEqual([{ opIndex: 1, what: expect.stringContaining('rules/live') }]);
    expect((await kv.get('rules/live'))?.value).toBe('v2');
    expect(await kv.get('rules/history/3')).toBeUndefined();

    const read = await kv.txn([{ verb: 'get', key: 'rules/live' }]);
    expect(read[0]?.value).toBe('v2');
  });

  it('refuses values over 512 KiB and bad input before sending anything', async () => {
    await expect(kv.put('big', 'x'.repeat(maxKvValueBytes + 1))).rejects.toBeInstanceOf(KvTooLargeError);
    await expect(
      kv.txn([{ verb: 'set', key: 'big', value: 'é'.repeat(maxKvValueBytes / 2 + 1) }]),
    ).rejects.toMatchObject({
      code: 'KV_TOO_LARGE',
    });
    expect(await kv.put('big', 'x'.repeat(maxKvValueBytes))).toBe(true);
    await expect(kv.txn([])).rejects.toBeInstanceOf(ConfigError);
    await expect(kv.get('')).rejects.toBeInstanceOf(ConfigError);
    expect(() => new ConsulKv({ url: 'ftp://x' })).toThrow(ConfigError);
  });

  it('cuts a listing at maxEntries', async () => {
    const small = new ConsulKv({ url: server.address?.url ?? '', maxEntries: 2 });
    try {
      for (const key of ['p/a', 'p/b', 'p/c']) await kv.put(key, key);
      await expect(small.list('p/')).rejects.toBeInstanceOf(KvTooLargeError);
      await expect(small.keys('p/')).rejects.toBeInstanceOf(KvTooLargeError);
    } finally {
      await small.close();
    }
  });

  it('reports an unreachable registry as RegistryUnavailableError', async () => {
    const url = server.address?.url ?? '';
    await server.close();
    const gone = new ConsulKv({ url, timeoutMs: 1_000 });
    try {
      await expect(gone.get('a')).rejects.toBeInstanceOf(RegistryUnavailableError);
      await expect(gone.txn([{ verb: 'get', key: 'a' }])).rejects.toBeInstanceOf(RegistryUnavailableError);
    } finally {
      await gone.close();
    }
  });
});
