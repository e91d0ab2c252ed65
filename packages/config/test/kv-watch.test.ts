import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ClosedError, ManualClock, RegistryUnavailableError } from '@trellis/core';
import { ConsulKv, KvWatch, type KvEntry, type KvRecovered } from '@trellis/config';
import type { RegistryServer } from '@trellis/registry-server';
import { next, startServer, until } from './helpers.js';

const values = (entries: readonly KvEntry[] | undefined): string[] => (entries ?? []).map((e) => `${e.key}=${e.value}`);

describe('KvWatch', () => {
  let server: RegistryServer;
  let url: string;
  let kv: ConsulKv;

  beforeEach(async () => {
    ({ server, url } = await startServer());
    kv = new ConsulKv({ url, timeoutMs: 2_000 });
  });
  afterEach(async () => {
    await kv.close();
    await server.close();
  });

  it('sees a put through the blocking query it holds, with no polling', async () => {
    await kv.put('trellis/rules/forum', 'v1');
    // A manual clock that never moves: the watch has no timer to poll with, only its queries.
    const watch = kv.watch('trellis/rules/forum', { clock: new ManualClock(), floorMs: 0 });
    const first = next(watch.onChange);
    await watch.ready();
    expect(values(await first)).toEqual(['trellis/rules/forum=v1']);
    await until(() => server.heldQueries === 1, 'the watch holds a blocking query');
    const changed = next(watch.onChange);
    await kv.put('trellis/rules/forum', 'v2');
    expect(values(await changed)).toEqual(['trellis/rules/forum=v2']);
    expect(values(watch.current())).toEqual(['trellis/rules/forum=v2']);

    const deleted = next(watch.onChange);
    await kv.delete('trellis/rules/forum');
    expect(await deleted).toEqual([]);
    watch.close();
    // close() ends the held query at once: the server sees the client go.
    await until(() => server.heldQueries === 0, 'the held query ended');
  });

  it('follows a prefix, and fires only when what is under it changes', async () => {
    const watch = kv.watch('config/forum/', { recurse: true, floorMs: 0 });
    const changes: string[][] = [];
    watch.onChange((entries) => changes.push(values(entries)));
    await watch.ready();
    expect(watch.current()).toEqual([]);
    const seen = next(watch.onChange, (e) => e.length === 2);
    await kv.put('config/forum/a', '1');
    await kv.put('config/forum/b', '2');
    await seen;
    // Writing the same value again moves the index but changes nothing a reader sees.
    await kv.put('config/forum/a', '1');
    const third = next(watch.onChange);
    await kv.put('config/forum/a', '3');
    expect(values(await third)).toEqual(['config/forum/a=3', 'config/forum/b=2']);
    expect(changes[0]).toEqual([]);
    expect(changes.at(-1)).toEqual(['config/forum/a=3', 'config/forum/b=2']);
    expect(changes.filter((c) => c.join() === 'config/forum/a=1,config/forum/b=2')).toHaveLength(1);
    watch.close();
  });

  it('keeps the last entries while the registry is down, and starts over when it comes back', async () => {
    // Five writes: the prefix's index is then past what an empty registry starts at.
    for (const size of [1, 2, 5, 10, 20]) await kv.put('config/forum/pageSize', String(size));
    const watch = kv.watch('config/forum/', { recurse: true, floorMs: 0, backoffBaseMs: 10, backoffMaxMs: 50 });
    await watch.ready();
    const unavailable = next(watch.onUnavailable);
    const port = Number(new URL(url).port);
    await server.close();
    expect(await unavailable).toBeInstanceOf(RegistryUnavailableError);
    expect(watch.unavailable).toBe(true);
    expect(values(watch.current())).toEqual(['config/forum/pageSize=20']);
    await expect(watch.ready()).resolves.toBeUndefined();

    // A new, empty registry on the same port: its index starts again below the old one.
    const recovered: KvRecovered[] = [];
    watch.onRecovered((r) => recovered.push(r));
    ({ server } = await startServer(undefined, port));
    const changed = next(watch.onChange, (e) => values(e).includes('config/forum/pageSize=50'));
    await kv.put('config/forum/pageSize', '50');
    await changed;
    expect(recovered[0]).toEqual({ reset: true });
    expect(watch.unavailable).toBe(false);
    watch.close();
  });

  it('ready() rejects when the first query fails, and on close', async () => {
    const port = Number(new URL(url).port);
    await server.close();
    const gone = new ConsulKv({ url: `http://127.0.0.1:${port}`, timeoutMs: 1_000 });
    try {
      const watch = gone.watch('a', { backoffBaseMs: 10, backoffMaxMs: 20 });
      await expect(watch.ready(2_000)).rejects.toBeInstanceOf(RegistryUnavailableError);
      expect(watch.current()).toBeUndefined();
      watch.close();
      await expect(watch.ready()).rejects.toBeInstanceOf(ClosedError);
    } finally {
      await gone.close();
      ({ server } = await startServer());
    }
  });

  it('ready() times out on the watch clock when nothing answers', async () => {
    const clock = new ManualClock();
    // A query that never answers: a registry that accepted the connection and went silent.
    const silent = ({ signal }: { signal: AbortSignal }): Promise<never> =>
      new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error)));
    const watch = new KvWatch('a', silent, { clock });
    const ready = watch.ready(1_000);
    clock.advance(1_000);
    await expect(ready).rejects.toMatchObject({ code: 'TIMEOUT' });
    watch.close();
  });
});
