import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { z } from 'zod';
import { ConfigError } from '@trellis/core';
import { ConsulKv, ServiceConfig } from '@trellis/config';
import type { RegistryServer } from '@trellis/registry-server';
import { next, startServer } from './helpers.js';

const schema = z.object({
  pageSize: z.number().int().min(1).max(100).default(20),
  title: z.string().default('Forum'),
  banner: z.string().optional(),
  db: z.object({ host: z.string().default('localhost'), port: z.number().int().default(5432) }),
});

describe('ServiceConfig', () => {
  let server: RegistryServer;
  let url: string;
  let kv: ConsulKv;
  let dir: string;
  let warnings: string[];
  const configs: ServiceConfig<typeof schema>[] = [];

  beforeEach(async () => {
    ({ server, url } = await startServer());
    kv = new ConsulKv({ url, timeoutMs: 1_000 });
    dir = await mkdtemp(path.join(tmpdir(), 'trellis-config-'));
    warnings = [];
  });
  afterEach(async () => {
    for (const config of configs.splice(0)) config.close();
    await kv.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  type Options = ConstructorParameters<typeof ServiceConfig<typeof schema>>[0];
  function config(options: { [K in keyof Options]?: Options[K] | undefined } = {}): ServiceConfig<typeof schema> {
    const made = new ServiceConfig({
      service: 'forum',
      schema,
      env: {},
      kv,
      logger: { warn: (message) => warnings.push(message) },
      watch: { floorMs: 0, backoffBaseMs: 10, backoffMaxMs: 50 },
      ...(options as Partial<Options>),
    });
    configs.push(made);
    return made;
  }

  it('layers defaults < file < environment < config/application/ < config/<service>/ < config/<service>,<profile>/', async () => {
    const file = path.join(dir, 'forum.json');
    await writeFile(file, JSON.stringify({ pageSize: 30, title: 'From the file', db: { host: 'file-db' } }));
    await kv.put('config/application/title', 'Shared title');
    await kv.put('config/application/banner', 'shared banner');
    await kv.put('config/forum/banner', 'forum banner');
    await kv.put('config/forum,prod/banner', 'prod banner');
    await kv.put('config/forum/db/port', '6543');
    await kv.put('config/mail/title', 'not ours');
    const forum = config({
      file,
      profile: 'prod',
      env: { FORUM_PAGE_SIZE: '40', FORUM_DB_HOST: 'env-db', PAGE_SIZE: '1' },
    });
    expect(forum.get('pageSize')).toBe(40); // before start: defaults and environment
    await forum.start();
    expect(forum.values()).toEqual({
      pageSize: 40,
      title: 'Shared title',
      banner: 'prod banner',
      db: { host: 'env-db', port: 6543 },
    });
    const sources = Object.fromEntries(forum.entries().map((e) => [e.key, e.source]));
    expect(sources).toEqual({
      pageSize: 'env:FORUM_PAGE_SIZE',
      title: 'kv:config/application/title',
      banner: 'kv:config/forum,prod/banner',
      'db.host': 'env:FORUM_DB_HOST',
      'db.port': 'kv:config/forum/db/port',
    });
    const plain = config({ envPrefix: 'APP_', env: { APP_TITLE: '"quoted"', FORUM_TITLE: 'ignored' } });
    await plain.start();
    // Without a profile, config/forum,prod/ is not read; JSON text is decoded.
    expect(plain.get('banner')).toBe('forum banner');
    expect(plain.get('title')).toBe('Shared title');
    expect(config({ kv: undefined, env: { APP_TITLE: '"quoted"' }, envPrefix: 'APP_' }).get('title')).toBe('quoted');
    expect(warnings).toEqual([]);
  });

  it('sees a KV change within one blocking query, firing onChange only for the key that changed', async () => {
    await kv.put('config/forum/pageSize', '25');
    const forum = config();
    await forum.start();
    expect(forum.get('pageSize')).toBe(25);
    const titles: string[] = [];
    forum.onChange('title', (value) => titles.push(value));
    const sizes: [number, number][] = [];
    forum.onChange('pageSize', (value, previous) => sizes.push([value, previous]));
    const changed = next((listener) => forum.onChange('pageSize', listener));
    await kv.put('config/forum/pageSize', '50');
    expect(await changed).toBe(50);
    // A write that leaves the value in force as it was fires nothing.
    await kv.put('config/application/pageSize', '99');
    const db = next((listener) => forum.onChange('db', listener));
    await kv.put('config/forum/db/host', 'db-2');
    expect(await db).toEqual({ host: 'db-2', port: 5432 });
    expect(sizes).toEqual([[50, 25]]);
    expect(titles).toEqual([]);
    const back = next((listener) => forum.onChange('pageSize', listener));
    await kv.delete('config/forum/pageSize');
    expect(await back).toBe(99); // config/application/ is next in line
  });

  it('refuses a value that fails the schema or a key it does not know, keeps the last good value, and reports it once', async () => {
    await kv.put('config/forum/pageSize', '25');
    const forum = config();
    await forum.start();
    const refused = next(forum.onRefused);
    await kv.put('config/forum/pageSize', '1000');
    expect(await refused).toEqual({
      key: 'pageSize',
      source: 'kv:config/forum/pageSize',
      reason: expect.stringContaining('100'),
    });
    expect(forum.get('pageSize')).toBe(25);

    // Another key under the prefix changes: the whole prefix is read again, the refusal is not repeated.
    const unknown = next(forum.onRefused);
    await kv.put('config/forum/pagesize', '30');
    expect(await unknown).toMatchObject({ key: 'pagesize', reason: 'the schema has no such property' });
    const title = next((listener) => forum.onChange('title', listener));
    await kv.put('config/forum/title', 'New');
    await title;
    expect(forum.refusals.map((r) => r.key)).toEqual(['pageSize', 'pagesize']);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain('pageSize');
    expect(warnings[0]).toContain('kv:config/forum/pageSize');

    const fixed = next((listener) => forum.onChange('pageSize', listener));
    await kv.put('config/forum/pageSize', '40');
    expect(await fixed).toBe(40);
    // Refused again after a good value: reported again.
    const again = next(forum.onRefused);
    await kv.put('config/forum/pageSize', '"many"');
    expect(await again).toMatchObject({ key: 'pageSize' });
    expect(forum.get('pageSize')).toBe(40);
    expect(forum.refusals).toHaveLength(3);
  });

  it('refuses bad values from the environment and the file too, falling back to the layer below', async () => {
    const file = path.join(dir, 'forum.json');
    await writeFile(file, JSON.stringify({ pageSize: 0, title: 'file', color: 'red' }));
    const forum = config({ kv: undefined, file, env: { FORUM_PAGE_SIZE: 'lots' } });
    await forum.start();
    expect(forum.get('pageSize')).toBe(20);
    expect(forum.get('title')).toBe('file');
    expect(forum.refusals.map((r) => `${r.key} ${r.source}`)).toEqual([
      'pageSize env:FORUM_PAGE_SIZE',
      `pageSize file:${file}`,
      `color file:${file}`,
    ]);
  });

  it('starts from the lower layers when the registry is down, and applies the KV when it comes back', async () => {
    const port = Number(new URL(url).port);
    await server.close();
    const forum = config({ env: { FORUM_PAGE_SIZE: '30' } });
    await forum.start(2_000);
    expect(forum.get('pageSize')).toBe(30);
    expect(warnings[0]).toContain('starts without the KV');
    ({ server } = await startServer(undefined, port));
    const changed = next(
      (listener) => forum.onChange('pageSize', listener),
      () => true,
      10_000,
    );
    await kv.put('config/forum/pageSize', '60');
    expect(await changed).toBe(60);
  });

  it('names a required property no layer gives, and a file that is not JSON', async () => {
    const strict = new ServiceConfig({ service: 'forum', schema: z.object({ secret: z.string() }), env: {} });
    await expect(strict.start()).rejects.toMatchObject({
      field: 'secret',
      problem: expect.stringContaining('FORUM_SECRET'),
    });
    const file = path.join(dir, 'bad.json');
    await writeFile(file, '{');
    await expect(config({ kv: undefined, file }).start()).rejects.toBeInstanceOf(ConfigError);
    expect(() => config({ service: 'bad name' })).toThrow(ConfigError);
    expect(() => config().onChange('nope' as 'title', () => undefined)).toThrow(ConfigError);
  });
});
