import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from '@jest/globals';
import Consul from 'consul';
import { ConfigError, ManualClock } from '@trellis/core';
import { AclInputError, DataCorruptError, DataDirError, RegistryServer } from '@trellis/registry-server';
import { journalKinds } from '../src/persistence/durable-state.js';

const root = 'root-secret';
const dirs: string[] = [];
const servers: RegistryServer[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-shapes-'));
  dirs.push(dir);
  return dir;
}

function server(dataDir: string, clock: ManualClock, compactAfterBytes?: number): RegistryServer {
  const created = new RegistryServer({
    logLevel: 'silent',
    dataDir,
    clock,
    enableScriptChecks: true,
    acl: { enabled: true, initialManagementToken: root },
    ...(compactAfterBytes === undefined ? {} : { compactAfterBytes }),
  });
  servers.push(created);
  return created;
}

/** The error a server started on `dataDir` throws; undefined if it starts. */
function refusedStart(dataDir: string, clock: ManualClock): unknown {
  try {
    server(dataDir, clock);
  } catch (error) {
    return error;
  }
  return undefined;
}

async function start(dataDir: string, clock: ManualClock, compactAfterBytes?: number) {
  const running = server(dataDir, clock, compactAfterBytes);
  const { url, port } = await running.listen({ port: 0, host: '127.0.0.1' });
  return { server: running, url, consul: new Consul({ host: '127.0.0.1', port, defaults: { token: root } }) };
}

async function call(method: string, url: string, body?: unknown): Promise<string> {
  const reply = await fetch(url, {
    method,
    headers: { 'X-Consul-Token': root },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await reply.text();
  if (reply.status !== 200) throw new Error(`${method} ${url} answered ${reply.status}: ${text}`);
  return text;
}

/** What the server answers for every kind of state it keeps, to compare across a restart. */
async function readBack(url: string, sessionId: string): Promise<Record<string, string>> {
  const paths = [
    '/v1/agent/services',
    '/v1/agent/checks',
    '/v1/catalog/services',
    '/v1/catalog/nodes',
    '/v1/catalog/node/ext-db',
    '/v1/health/node/ext-db',
    '/v1/health/service/web',
    '/v1/health/service/tagged',
    '/v1/health/service/gone',
    '/v1/kv/?recurse',
    `/v1/session/info/${sessionId}`,
    '/v1/session/list',
    '/v1/acl/policies',
    '/v1/acl/tokens',
    '/v1/agent/self',
  ];
  const seen: Record<string, string> = {};
  for (const p of paths) {
    const reply = await fetch(`${url}${p}`, { headers: { 'X-Consul-Token': root } });
    seen[p] = `${reply.status} ${reply.headers.get('x-consul-index') ?? '-'} ${await reply.text()}`;
  }
  return seen;
}

/** The kinds of record a data directory holds, from its snapshot and journal. */
function kindsIn(dir: string): Set<string> {
  const kinds = new Set<string>();
  for (const name of fs.readdirSync(dir)) {
    const text = fs.readFileSync(path.join(dir, name), 'utf8');
    if (name === 'snapshot.json') {
      for (const kind of Object.keys((JSON.parse(text) as { records: object }).records)) kinds.add(kind);
    } else if (name.startsWith('journal-')) {
      for (const line of text.split('\n').filter((l) => l !== '')) {
        for (const [kind] of (JSON.parse(line) as { records: [string][] }).records) kinds.add(kind);
      }
    }
  }
  return kinds;
}

// A hand edit that keeps the checksum right: only the shape is wrong.
function reseal(json: string): string {
  const body = json.replace(/,"crc32":"[0-9a-f]{8}"\}$/, '');
  return `${body},"crc32":"${crc32(body).toString(16).padStart(8, '0')}"}`;
}

/** Writes one record of every kind the registry keeps, through its HTTP API. */
async function writeEverything(url: string, consul: Consul): Promise<string> {
  // A service with a TTL check, an HTTP check (headers, DisableRedirects) and a script check.
  await consul.agent.service.register({
    name: 'web',
    id: 'web-1',
    address: '10.0.0.1',
    port: 8080,
    tags: ['v1'],
    meta: { zone: 'a' },
    checks: [
      { name: 'ttl', ttl: '30s', notes: 'heartbeat', deregistercriticalserviceafter: '10m' },
      {
        name: 'http',
        http: 'http://127.0.0.1:1/health',
        interval: '10s',
        timeout: '2s',
        header: { 'X-Probe': ['1'] },
        method: 'POST',
        body: 'ping',
        disableredirects: true,
      },
      { name: 'script', args: ['true'], interval: '10s', timeout: '5s' },
    ] as never,
  });
  await consul.agent.check.pass({ id: 'service:web-1:1', note: 'alive' });
  // EnableTagOverride, which the npm client does not send.
  await call('PUT', `${url}/v1/agent/service/register`, {
    Name: 'tagged',
    ID: 'tagged-1',
    Port: 9000,
    EnableTagOverride: true,
    Weights: { Passing: 3, Warning: 1 },
  });
  // A check of the node, and maintenance of the node and of a service.
  await consul.agent.check.register({ name: 'node-ttl', id: 'node-ttl', ttl: '1m', status: 'warning' } as never);
  await consul.agent.maintenance({ enable: true, reason: 'patching' });
  await consul.agent.service.maintenance({ id: 'tagged-1', enable: true, reason: 'deploy' });
  // A service that is gone: its index (topic) stays.
  await consul.agent.service.register({ name: 'gone', id: 'gone-1' });
  await consul.agent.service.deregister('gone-1');
  // Another node, with a service and checks (catalog-node).
  await consul.catalog.register({
    node: 'ext-db',
    address: '10.1.0.5',
    nodemeta: { 'external-node': 'true' },
    service: { id: 'db-1', service: 'db', port: 5432, tags: ['primary'] },
  } as never);
  await call('PUT', `${url}/v1/catalog/register`, {
    Node: 'ext-db',
    Address: '10.1.0.5',
    TaggedAddresses: { lan: '10.1.0.5' },
    Checks: [
      {
        CheckID: 'db-tcp',
        Name: 'db TCP',
        ServiceID: 'db-1',
        Status: 'passing',
        Definition: { TCP: '10.1.0.5:5432', IntervalDuration: '10s' },
      },
    ],
  });
  // KV: an entry with flags (one above 2^53), a deleted key (tombstone), a lock held by a session.
  await consul.kv.set({ key: 'config/db', value: 'postgres://db', flags: 42 });
  await call('PUT', `${url}/v1/kv/config/big?flags=18446744073709551615`, 'x');
  await consul.kv.set('config/old', 'x');
  await consul.kv.del('config/old');
  const { ID: sessionId } = await consul.session.create({
    name: 'leader',
    ttl: '30s',
    behavior: 'delete',
    lockdelay: '5s',
    checks: ['serfHealth'],
  } as never);
  expect(await consul.kv.set({ key: 'locks/leader', value: 'me', acquire: sessionId })).toBe(true);
  // ACLs: a policy and a token holding it.
  const policy = JSON.parse(
    await call('PUT', `${url}/v1/acl/policy`, { Name: 'web', Rules: 'service "web" { policy = "write" }' }),
  ) as { ID: string };
  await call('PUT', `${url}/v1/acl/token`, { Description: 'web', Policies: [{ ID: policy.ID }] });
  return sessionId;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('persisted state, checked against its schemas on load', () => {
  it('reads back every kind of record the server writes, from the journal and from a snapshot', async () => {
    for (const compactAfterBytes of [undefined, 1]) {
      const dir = tempDir();
      const clock = new ManualClock();
      const first = await start(dir, clock, compactAfterBytes);
      const sessionId = await writeEverything(first.url, first.consul);
      const before = await readBack(first.url, sessionId);
      await first.server.close();
      expect([...kindsIn(dir)].sort()).toEqual(Object.values(journalKinds).sort());
      const written = fs
        .readdirSync(dir)
        .filter((name) => name !== 'LOCK')
        .map((name) => fs.readFileSync(path.join(dir, name), 'utf8'))
        .join('\n');
      for (const field of [
        '"enableTagOverride":true',
        '"disableRedirects":true',
        '"header":{"X-Probe":["1"]}',
        '"maintenance":true',
        '"script":{"args":["true"]',
        '"deregisterCriticalAfterMs":600000',
        '"flags":"18446744073709551615"',
        '"deletedAt":',
        '"lockIndex":1',
        `"session":"${sessionId}"`,
        '"behavior":"delete"',
        '"kvReapedIndex":',
        '"secretId":',
        '"taggedAddresses":{"lan":"10.1.0.5"}',
        '"definition":{"TCP":"10.1.0.5:5432"',
      ]) {
        expect(written).toContain(field);
      }

      const second = await start(dir, clock);
      expect(await readBack(second.url, sessionId)).toEqual(before);
      const locked = await second.consul.kv.get('locks/leader');
      expect(locked).toMatchObject({ Session: sessionId, LockIndex: 1 });
      await second.server.close();
    }
  });

  it('refuses a journal record of the wrong shape, naming file, line and field', async () => {
    const dir = tempDir();
    const clock = new ManualClock();
    const first = await start(dir, clock);
    await first.consul.agent.service.register({ name: 'web', id: 'web-1', port: 8080 });
    await first.consul.kv.set('a', '1');
    await first.server.close();
    const journal = path.join(dir, fs.readdirSync(dir).find((name) => name.startsWith('journal-')) ?? '');
    const lines = fs.readFileSync(journal, 'utf8').split('\n');
    const at = lines.findIndex((line) => line.includes('"web-1"'));
    expect(at).toBeGreaterThanOrEqual(0);
    const commit = JSON.parse(lines[at] ?? '') as { records: [string, string, unknown][] };
    const record = commit.records.findIndex(([kind]) => kind === 'service');
    lines[at] = reseal((lines[at] ?? '').replace('"port":8080', '"port":"8080"'));
    fs.writeFileSync(journal, lines.join('\n'));

    const refused = refusedStart(dir, clock);
    expect(refused).toBeInstanceOf(DataCorruptError);
    const field = `records.${record}.2.def.port`;
    expect(refused).toMatchObject({ code: 'DATA_CORRUPT', path: journal, line: at + 1, field });
    expect((refused as Error).message).toContain(`journal at line ${at + 1}`);
    expect((refused as Error).message).toContain(field);
    expect((refused as Error).message).toMatch(/expected number/);
  });

  it('refuses a snapshot record of the wrong shape, naming the field', async () => {
    const dir = tempDir();
    const clock = new ManualClock();
    const first = await start(dir, clock, 1);
    await first.consul.kv.set('a', '1');
    const { ID: sessionId } = await first.consul.session.create({ name: 'leader' });
    await first.server.close();
    const snapshot = path.join(dir, 'snapshot.json');
    fs.writeFileSync(
      snapshot,
      reseal(fs.readFileSync(snapshot, 'utf8').replace('"behavior":"release"', '"behavior":"keep"')),
    );

    expect(() => server(dir, clock)).toThrow(DataCorruptError);
    const refused = refusedStart(dir, clock);
    expect(refused).toMatchObject({ path: snapshot, line: undefined, field: `records.session.${sessionId}.behavior` });
  });

  it('lets go of the data directory before the constructor throws when the stores refuse the state', async () => {
    const dir = tempDir();
    const clock = new ManualClock();
    const first = await start(dir, clock);
    await call('PUT', `${first.url}/v1/acl/policy`, { Name: 'web', Rules: 'service "web" { policy = "write" }' });
    await first.server.close();
    // Rules of the right shape (a string) that do not parse: refused by the ACL store, not the schema.
    const journal = path.join(dir, fs.readdirSync(dir).find((name) => name.startsWith('journal-')) ?? '');
    const lines = fs.readFileSync(journal, 'utf8').split('\n');
    const at = lines.findIndex((line) => line.includes('service \\"web\\"'));
    lines[at] = reseal((lines[at] ?? '').replace('service \\"web\\"', 'nonsense \\"web\\"'));
    fs.writeFileSync(journal, lines.join('\n'));

    const refused = refusedStart(dir, clock);
    // Synchronously: a start tried again at once finds no lock of its own in the way.
    expect(fs.existsSync(path.join(dir, 'LOCK'))).toBe(false);
    expect(refused).toBeInstanceOf(DataDirError);
    expect((refused as Error).message).toMatch(/cannot restore its state.*Failed to parse ACL rules/);
    expect((refused as Error).cause).toBeInstanceOf(AclInputError);
    expect(() => server(dir, clock)).toThrow(/cannot restore its state/);
  });

  it('refuses a bad option without taking the data directory', () => {
    const dir = tempDir();
    for (const bad of [{ answerCacheMaxBytes: -1 }, { maxSessionsPerNode: 0 }, { requestTimeoutMs: 0 }]) {
      expect(() => new RegistryServer({ logLevel: 'silent', dataDir: dir, ...bad })).toThrow(ConfigError);
      expect(fs.existsSync(path.join(dir, 'LOCK'))).toBe(false);
    }
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
