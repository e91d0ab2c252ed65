import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { closeAll, get, startServer, type RawReply, type Running } from './helpers.js';

/** The JSON of one KV entry, as Consul answers it. */
interface KvJson {
  LockIndex: number;
  Key: string;
  Flags: number;
  Value: string | null;
  CreateIndex: number;
  ModifyIndex: number;
}

/** What the official client answers for a key read with `buffer: true`. */
interface ClientEntry {
  Key: string;
  Flags: number;
  Value: Buffer | null;
  CreateIndex: number;
  ModifyIndex: number;
  LockIndex: number;
}

const maxValueSize = 512 * 1024;
const tooLargeHelp = 'See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.';

describe('the KV store over HTTP', () => {
  let running: Running;
  let kv: string;

  beforeEach(async () => {
    running = await startServer();
    kv = `${running.url}/v1/kv`;
  });
  afterEach(closeAll);

  async function send(method: string, path: string, body?: Uint8Array | string): Promise<RawReply> {
    const res = await fetch(`${kv}/${path}`, { method, ...(body === undefined ? {} : { body }) });
    return { status: res.status, headers: res.headers, text: await res.text() };
  }

  async function bytes(path: string): Promise<{ status: number; headers: Headers; body: Buffer }> {
    const res = await fetch(`${kv}/${path}`);
    return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
  }

  async function entries(path: string): Promise<{ entries: KvJson[]; index: number }> {
    const reply = await get(`${kv}/${path}`);
    if (reply.status !== 200) throw new Error(`GET ${path} answered ${reply.status}: ${reply.text}`);
    return { entries: JSON.parse(reply.text) as KvJson[], index: Number(reply.headers.get('x-consul-index')) };
  }

  describe('round trips', () => {
    it('stores and reads a text value with the official client', async () => {
      expect(await running.consul.kv.set({ key: 'config/web/port', value: '8080' })).toBe(true);
      const entry = (await running.consul.kv.get({ key: 'config/web/port' })) as { Key: string; Value: string };
      expect(entry).toMatchObject({ Key: 'config/web/port', Value: '8080', Flags: 0, LockIndex: 0 });
    });

    it('answers Consul JSON: base64 value, indexes, and X-Consul-Index with the consistency headers', async () => {
      await send('PUT', 'k', 'hello');
      const reply = await get(`${kv}/k`);
      expect(reply.status).toBe(200);
      expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
      expect(reply.headers.get('x-consul-knownleader')).toBe('true');
      expect(reply.headers.get('x-consul-lastcontact')).toBe('0');
      const [entry] = JSON.parse(reply.text) as KvJson[];
      expect(entry).toEqual({
        LockIndex: 0,
        Key: 'k',
        Flags: 0,
        Value: Buffer.from('hello').toString('base64'),
        CreateIndex: 2,
        ModifyIndex: 2,
      });
      expect(reply.headers.get('x-consul-index')).toBe('2');
    });

    it('round-trips every byte value exactly, whatever the content type', async () => {
      const value = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
      // Invalid UTF-8 on purpose: a text parser would have replaced these bytes.
      value.set([0xc3, 0x28, 0xff, 0xfe], 100);
      expect((await send('PUT', 'bin', value)).text).toBe('true');
      expect((await bytes('bin?raw')).body.equals(value)).toBe(true);
      const {
        entries: [entry],
      } = await entries('bin');
      expect(Buffer.from(entry?.Value ?? '', 'base64').equals(value)).toBe(true);

      // The official client sends a Buffer as text/plain; it must arrive unchanged too.
      const other = Buffer.from([0, 0x80, 0xff, 0x0a, 0x0d]);
      await running.consul.kv.set({ key: 'bin2', value: other });
      // `buffer` (values as Buffers) works at run time but is missing from the client's typings,
      // and so is the Buffer that `raw` answers.
      const asBuffers = { key: 'bin2', buffer: true };
      const read = (await running.consul.kv.get(asBuffers)) as unknown as ClientEntry;
      expect(read.Value?.equals(other)).toBe(true);
      const raw = (await running.consul.kv.get({ key: 'bin2', raw: true })) as unknown as Buffer;
      expect(raw.equals(other)).toBe(true);
    });

    it('stores an empty value from an empty body or no body at all, and shows it as null', async () => {
      await running.consul.kv.set({ key: 'empty-from-client', value: '' });
      // No content type, no body.
      expect((await send('PUT', 'no-body')).text).toBe('true');
      const all = await entries('?recurse');
      expect(all.entries.map((e) => [e.Key, e.Value])).toEqual([
        ['empty-from-client', null],
        ['no-body', null],
      ]);
      const raw = await bytes('no-body?raw');
      expect([raw.status, raw.body.length]).toEqual([200, 0]);
    });

    it('answers ?raw with the bytes alone and Consul headers', async () => {
      await send('PUT', 'page', '<script>alert(1)</script>');
      const raw = await bytes('page?raw');
      expect(raw.status).toBe(200);
      expect(raw.body.toString()).toBe('<script>alert(1)</script>');
      expect(raw.headers.get('content-type')).toBe('text/plain');
      expect(raw.headers.get('x-content-type-options')).toBe('nosniff');
      expect(raw.headers.get('content-security-policy')).toBe('sandbox');
      expect(raw.headers.get('x-consul-index')).toBe('2');
    });

    it('keeps flags, and resets them to 0 on a write without them', async () => {
      const biggest = 2 ** 53 - 1;
      expect(await running.consul.kv.set({ key: 'f', value: 'v', flags: biggest })).toBe(true);
      expect((await entries('f')).entries[0]?.Flags).toBe(biggest);
      await running.consul.kv.set({ key: 'f', value: 'v2' });
      expect((await entries('f')).entries[0]?.Flags).toBe(0);
    });

    it('keeps CreateIndex and moves ModifyIndex on a change, but not on a write of the same value', async () => {
      await send('PUT', 'k?flags=1', 'v1');
      await send('PUT', 'other', 'x');
      await send('PUT', 'k?flags=1', 'v2');
      const before = await entries('k');
      expect(before.entries[0]).toMatchObject({ CreateIndex: 2, ModifyIndex: 4 });
      expect(before.index).toBe(4);
      expect((await send('PUT', 'k?flags=1', 'v2')).text).toBe('true');
      const after = await entries('k');
      expect(after.entries[0]).toMatchObject({ CreateIndex: 2, ModifyIndex: 4 });
      expect(after.index).toBe(4);
    });

    it('decodes percent-encoded keys, slashes and any characters included', async () => {
      const key = 'dir/a b+c?d#e%f/€/😀';
      await running.consul.kv.set({ key, value: 'odd' });
      // The client encodes "/" as %2F; a raw path with real slashes names the same key.
      const viaPath = await get(`${kv}/${key.split('/').map(encodeURIComponent).join('/')}`);
      expect((JSON.parse(viaPath.text) as KvJson[])[0]?.Key).toBe(key);
      expect(await running.consul.kv.keys({ key: 'dir/' })).toEqual([key]);
      expect(await running.consul.kv.del({ key })).toBe(true);
      expect(await running.consul.kv.get({ key })).toBeUndefined();
    });
  });

  describe('reading prefixes', () => {
    beforeEach(async () => {
      for (const key of ['app/db/host', 'app/db/port', 'app/name', 'app/web/', 'apple', 'zebra']) {
        await running.consul.kv.set({ key, value: key.toUpperCase() });
      }
    });

    it('lists every entry under a prefix with ?recurse, sorted', async () => {
      const list = (await running.consul.kv.get({ key: 'app/', recurse: true })) as { Key: string; Value: string }[];
      expect(list.map((e) => [e.Key, e.Value])).toEqual([
        ['app/db/host', 'APP/DB/HOST'],
        ['app/db/port', 'APP/DB/PORT'],
        ['app/name', 'APP/NAME'],
        ['app/web/', 'APP/WEB/'],
      ]);
      expect((await entries('app?recurse')).entries.map((e) => e.Key)).toContain('apple');
      expect((await entries('?recurse')).entries).toHaveLength(6);
    });

    it('lists keys with ?keys, cut after the first separator past the prefix', async () => {
      expect(await running.consul.kv.keys({ key: 'app/', separator: '/' })).toEqual([
        'app/db/',
        'app/name',
        'app/web/',
      ]);
      expect(await running.consul.kv.keys({ key: '', separator: '/' })).toEqual(['app/', 'apple', 'zebra']);
      expect(await running.consul.kv.keys({ key: 'app/db/' })).toEqual(['app/db/host', 'app/db/port']);
      // Consul's old spelling of the parameter still works.
      expect(JSON.parse((await get(`${kv}/app/?keys&seperator=/`)).text)).toEqual(['app/db/', 'app/name', 'app/web/']);
    });

    it('answers an index that moves only with the prefix it lists', async () => {
      const app = await entries('app/?recurse');
      await running.consul.kv.set({ key: 'zebra', value: 'stripes' });
      expect((await entries('app/?recurse')).index).toBe(app.index);
      await running.consul.kv.del({ key: 'app/name' });
      expect((await entries('app/?recurse')).index).toBeGreaterThan(app.index);
    });
  });

  describe('not found', () => {
    it('answers 404 with an empty body and X-Consul-Index for a missing key, prefix, or key list', async () => {
      await send('PUT', 'present', 'x');
      for (const path of ['missing', 'missing?raw', 'nothing/?recurse', 'nothing/?keys']) {
        const reply = await get(`${kv}/${path}`);
        expect([path, reply.status, reply.text]).toEqual([path, 404, '']);
        expect(Number(reply.headers.get('x-consul-index'))).toBe(2);
      }
      expect(await running.consul.kv.get({ key: 'missing' })).toBeUndefined();
    });

    it('answers the keys of an empty store with an empty list, but its entries with 404', async () => {
      const keys = await get(`${kv}/?keys`);
      expect([keys.status, keys.text, keys.headers.get('x-consul-index')]).toEqual([200, '[]', '1']);
      const all = await get(`${kv}/?recurse`);
      expect([all.status, all.headers.get('x-consul-index')]).toEqual([404, '1']);
    });
  });

  describe('check-and-set', () => {
    // The official client resolves a `false` answer as undefined (papi drops a falsy body), so
    // its refusals are checked as "not true", and the raw answer by fetch.
    it('answers a refused check-and-set with the JSON false', async () => {
      await send('PUT', 'k', 'v');
      const reply = await send('PUT', 'k?cas=0', 'w');
      expect([reply.status, reply.text]).toEqual([200, 'false']);
      expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
      expect([(await send('DELETE', 'k?cas=999')).text, (await send('DELETE', 'k?cas=2')).text]).toEqual([
        'false',
        'true',
      ]);
    });

    it('creates a key with cas=0 only when it is absent', async () => {
      expect(await running.consul.kv.set({ key: 'lock', value: 'mine', cas: 0 })).toBe(true);
      expect(await running.consul.kv.set({ key: 'lock', value: 'yours', cas: 0 })).not.toBe(true);
      expect(((await running.consul.kv.get({ key: 'lock' })) as { Value: string }).Value).toBe('mine');
    });

    it('writes with cas=ModifyIndex once, then refuses the stale index', async () => {
      await running.consul.kv.set({ key: 'counter', value: '1' });
      const { ModifyIndex } = (await running.consul.kv.get({ key: 'counter' })) as { ModifyIndex: number };
      expect(await running.consul.kv.set({ key: 'counter', value: '2', cas: ModifyIndex })).toBe(true);
      expect(await running.consul.kv.set({ key: 'counter', value: '3', cas: ModifyIndex })).not.toBe(true);
      expect(await running.consul.kv.set({ key: 'absent', value: 'x', cas: ModifyIndex })).not.toBe(true);
      expect(((await running.consul.kv.get({ key: 'counter' })) as { Value: string }).Value).toBe('2');
      expect(await running.consul.kv.get({ key: 'absent' })).toBeUndefined();
    });

    it('lets exactly one of 20 concurrent writers with the same cas win, and keeps its value', async () => {
      await send('PUT', 'leader', 'nobody');
      const {
        entries: [entry],
      } = await entries('leader');
      const index = entry?.ModifyIndex ?? 0;
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => send('PUT', `leader?cas=${index}`, `writer-${i}`)),
      );
      const winners = answers.flatMap((answer, i) => (answer.text === 'true' ? [i] : []));
      expect(answers.every((a) => a.status === 200 && (a.text === 'true' || a.text === 'false'))).toBe(true);
      expect(winners).toHaveLength(1);
      const after = await entries('leader');
      expect(Buffer.from(after.entries[0]?.Value ?? '', 'base64').toString()).toBe(`writer-${winners[0]}`);
      expect(after.entries[0]?.ModifyIndex).toBe(index + 1);
    });

    it('deletes with cas only at the current ModifyIndex', async () => {
      await running.consul.kv.set({ key: 'k', value: 'v' });
      const { ModifyIndex } = (await running.consul.kv.get({ key: 'k' })) as { ModifyIndex: number };
      expect(await running.consul.kv.del({ key: 'k', cas: ModifyIndex + 1 })).not.toBe(true);
      expect(await running.consul.kv.get({ key: 'k' })).toBeDefined();
      expect(await running.consul.kv.del({ key: 'k', cas: ModifyIndex })).toBe(true);
      expect(await running.consul.kv.get({ key: 'k' })).toBeUndefined();
    });
  });

  describe('deleting', () => {
    it('deletes a key, or with ?recurse every key under a prefix', async () => {
      for (const key of ['a/1', 'a/2/x', 'ab', 'b']) await running.consul.kv.set({ key, value: 'v' });
      expect(await running.consul.kv.del({ key: 'b' })).toBe(true);
      expect(await running.consul.kv.del({ key: 'a/', recurse: true })).toBe(true);
      expect(await running.consul.kv.keys({ key: '' })).toEqual(['ab']);
      // Deleting what is not there is not an error.
      expect(await running.consul.kv.del({ key: 'b' })).toBe(true);
      // A bare /v1/kv/ with ?recurse deletes everything.
      expect((await send('DELETE', '?recurse')).text).toBe('true');
      expect(await running.consul.kv.keys({ key: '' })).toEqual([]);
    });
  });

  describe('requests it cannot accept change nothing', () => {
    let indexBefore: number;

    beforeEach(async () => {
      await send('PUT', 'k?flags=5', 'original');
      indexBefore = (await entries('k')).index;
    });

    async function unchanged(): Promise<void> {
      const { entries: list, index } = await entries('?recurse');
      expect(index).toBe(indexBefore);
      expect(list.map((e) => [e.Key, e.Flags, Buffer.from(e.Value ?? '', 'base64').toString()])).toEqual([
        ['k', 5, 'original'],
      ]);
    }

    it.each([
      ['GET', '', 'Missing key name'],
      ['PUT', '', 'Missing key name'],
      ['DELETE', '', 'Missing key name'],
      ['PUT', 'k?flags=x', 'Invalid flags: "x" is not an integer from 0 to 2^64-1'],
      ['PUT', 'k?flags=-1', 'Invalid flags: "-1" is not an integer from 0 to 2^64-1'],
      ['PUT', 'k?flags=1.5', 'Invalid flags: "1.5" is not an integer from 0 to 2^64-1'],
      [
        'PUT',
        'k?flags=18446744073709551616',
        'Invalid flags: "18446744073709551616" is not an integer from 0 to 2^64-1',
      ],
      ['PUT', 'k?cas=', 'Invalid cas: "" is not an integer from 0 to 2^53-1'],
      ['PUT', 'k?cas=abc', 'Invalid cas: "abc" is not an integer from 0 to 2^53-1'],
      ['DELETE', 'k?cas=-3', 'Invalid cas: "-3" is not an integer from 0 to 2^53-1'],
      ['DELETE', 'k?recurse&cas=2', 'Conflicting flags: recurse and cas cannot be used together'],
      ['PUT', 'k?acquire=abc', 'invalid session "abc"'],
      ['PUT', 'k?cas=2&acquire=abc', 'Conflicting flags: acquire=abc&cas=2'],
      ['PUT', 'k?release=abc&acquire=abc', 'Conflicting flags: acquire=abc&release=abc'],
      ['GET', 'k?index=soon', 'Invalid index: "soon" is not a non-negative integer'],
    ])('%s /v1/kv/%s answers 400 "%s"', async (method, path, message) => {
      const reply = await send(method, path, method === 'PUT' ? 'changed' : undefined);
      expect([reply.status, reply.text]).toEqual([400, message]);
      expect(reply.headers.get('content-type')).toMatch(/^text\/plain/);
      await unchanged();
    });

    it('answers 413 with Consul text for a value over 512 KiB, and accepts exactly 512 KiB', async () => {
      const reply = await send('PUT', 'k', Buffer.alloc(maxValueSize + 1, 1));
      expect(reply.status).toBe(413);
      expect(reply.text).toBe(
        `Request body(${maxValueSize + 1} bytes) too large, max size: ${maxValueSize} bytes. ${tooLargeHelp}`,
      );
      await unchanged();
      expect((await send('PUT', 'k', Buffer.alloc(maxValueSize, 1))).text).toBe('true');
      expect((await bytes('k?raw')).body.length).toBe(maxValueSize);
    });

    it('answers 413 for a value over the limit sent in chunks, without a length', async () => {
      const chunk = new Uint8Array(64 * 1024);
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent > maxValueSize) return controller.close();
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      const res = await fetch(`${kv}/k`, { method: 'PUT', body, duplex: 'half' });
      expect([res.status, await res.text()]).toEqual([
        413,
        `Request body too large, max size: ${maxValueSize} bytes. ${tooLargeHelp}`,
      ]);
      await unchanged();
    });

    it('answers 405 for methods Consul does not serve on /v1/kv/', async () => {
      const reply = await send('POST', 'k', 'x');
      expect([reply.status, reply.text, reply.headers.get('allow')]).toEqual([
        405,
        'method POST not allowed',
        'GET, PUT, DELETE',
      ]);
      await unchanged();
    });
  });
});
