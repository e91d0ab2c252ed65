import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '@trellis/core';
import { closeAll, get, put, startServer, type RawReply, type Running } from './helpers.js';

// Blocking reads of the KV store: ?index=N holds a read until what it reads changes after N.
describe('KV blocking queries', () => {
  let clock: ManualClock;
  let running: Running;
  let kv: string;

  beforeEach(async () => {
    clock = new ManualClock();
    running = await startServer(clock);
    kv = `${running.url}/v1/kv`;
  });
  afterEach(closeAll);

  /** Resolves once the server holds `count` reads: the moment to make the change they wait for. */
  async function held(count: number): Promise<void> {
    for (let i = 0; i < 10_000 && running.server.heldQueries < count; i++) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(running.server.heldQueries).toBe(count);
  }

  const indexOf = (reply: RawReply): number => Number(reply.headers.get('x-consul-index'));
  const valueOf = (reply: RawReply): string | undefined => {
    const [entry] = JSON.parse(reply.text) as { Value: string | null }[];
    return entry?.Value === null || entry === undefined ? undefined : Buffer.from(entry.Value, 'base64').toString();
  };

  it('holds a key until it is written, not waking for other keys or for a write that changes nothing', async () => {
    await put(`${kv}/watched`, 'v1');
    const first = await get(`${kv}/watched`);
    const pending = get(`${kv}/watched?index=${indexOf(first)}`);
    await held(1);
    await put(`${kv}/other`, 'x');
    await put(`${kv}/watched/child`, 'x');
    await put(`${kv}/watched`, 'v1');
    expect(running.server.heldQueries).toBe(1);
    await put(`${kv}/watched`, 'v2');
    const answer = await pending;
    expect(answer.status).toBe(200);
    expect(valueOf(answer)).toBe('v2');
    expect(indexOf(answer)).toBeGreaterThan(indexOf(first));
    expect(running.server.heldQueries).toBe(0);
  });

  it('wakes a held key when it is deleted, answering 404 with a later index', async () => {
    await put(`${kv}/doomed`, 'v');
    const first = await get(`${kv}/doomed`);
    const pending = get(`${kv}/doomed?index=${indexOf(first)}`);
    await held(1);
    await fetch(`${kv}/doomed`, { method: 'DELETE' });
    const answer = await pending;
    expect(answer.status).toBe(404);
    expect(indexOf(answer)).toBeGreaterThan(indexOf(first));
  });

  it('wakes a held missing key when it is created', async () => {
    const first = await get(`${kv}/later`);
    expect(first.status).toBe(404);
    const pending = get(`${kv}/later?index=${indexOf(first)}`);
    await held(1);
    await put(`${kv}/other`, 'x');
    expect(running.server.heldQueries).toBe(1);
    await put(`${kv}/later`, 'here');
    const answer = await pending;
    expect([answer.status, valueOf(answer)]).toEqual([200, 'here']);
  });

  it('holds ?recurse until a key under the prefix changes, not one beside it', async () => {
    await put(`${kv}/app/a`, '1');
    const first = await get(`${kv}/app/?recurse`);
    const pending = get(`${kv}/app/?recurse&index=${indexOf(first)}`);
    await held(1);
    await put(`${kv}/apple`, 'not under app/');
    await put(`${kv}/ap`, 'nor this');
    expect(running.server.heldQueries).toBe(1);
    await put(`${kv}/app/deep/b`, '2');
    const answer = await pending;
    expect((JSON.parse(answer.text) as { Key: string }[]).map((e) => e.Key)).toEqual(['app/a', 'app/deep/b']);
    expect(indexOf(answer)).toBeGreaterThan(indexOf(first));
  });

  it('holds ?keys until a key under the prefix is deleted', async () => {
    await put(`${kv}/svc/a`, '1');
    await put(`${kv}/svc/b`, '2');
    const first = await get(`${kv}/svc/?keys`);
    const pending = get(`${kv}/svc/?keys&index=${indexOf(first)}`);
    await held(1);
    await fetch(`${kv}/svc/a`, { method: 'DELETE' });
    const answer = await pending;
    expect(JSON.parse(answer.text)).toEqual(['svc/b']);
    expect(indexOf(answer)).toBeGreaterThan(indexOf(first));
  });

  it('answers unchanged, with the same index, when the wait runs out', async () => {
    await put(`${kv}/quiet`, 'v');
    const first = await get(`${kv}/quiet`);
    const pending = get(`${kv}/quiet?index=${indexOf(first)}&wait=10s`);
    await held(1);
    await put(`${kv}/noisy`, 'x');
    // 10 s plus the largest jitter, a sixteenth of the wait.
    clock.advance(10_000 + 10_000 / 16);
    const answer = await pending;
    expect([answer.status, valueOf(answer), indexOf(answer)]).toEqual([200, 'v', indexOf(first)]);
  });

  it('answers at once when the key moved past the index already', async () => {
    await put(`${kv}/k`, 'v1');
    const first = await get(`${kv}/k`);
    await put(`${kv}/k`, 'v2');
    const answer = await get(`${kv}/k?index=${indexOf(first)}`);
    expect(valueOf(answer)).toBe('v2');
    expect(running.server.heldQueries).toBe(0);
  });

  it('lets the official client watch a key', async () => {
    await running.consul.kv.set({ key: 'feature/flag', value: 'off' });
    const watch = running.consul.watch({ method: running.consul.kv.get, options: { key: 'feature/flag' } });
    const seen: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      watch.on('error', reject);
      watch.on('change', (entry: { Value: string }) => {
        seen.push(entry.Value);
        if (entry.Value === 'off') void running.consul.kv.set({ key: 'feature/flag', value: 'on' });
        if (entry.Value === 'on') resolve();
      });
    });
    try {
      await done;
      expect(seen).toEqual(['off', 'on']);
    } finally {
      watch.end();
    }
  });

  it('answers an index that is never 0 and grows with every change, and only then', async () => {
    const indexes: number[] = [];
    const record = async (): Promise<void> => {
      indexes.push(indexOf(await get(`${kv}/?keys`)));
    };
    await record();
    await put(`${kv}/a`, '1');
    await record();
    await put(`${kv}/b`, '2');
    await record();
    await put(`${kv}/a`, '1'); // no change
    await record();
    await fetch(`${kv}/a`, { method: 'DELETE' });
    await record();
    await fetch(`${kv}/a`, { method: 'DELETE' }); // nothing to delete
    await record();
    await fetch(`${kv}/?recurse`, { method: 'DELETE' });
    await record();
    expect(indexes).toEqual([1, 2, 3, 3, 4, 4, 5]);
    // Nor does a read of a missing key or an emptied prefix answer 0.
    expect(indexOf(await get(`${kv}/a`))).toBe(5);
    expect(indexOf(await get(`${kv}/?recurse`))).toBe(5);
  });
});
