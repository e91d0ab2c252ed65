import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import Consul from 'consul';
import { ManualClock } from '@trellis/core';
import { DataDirError, RegistryServer } from '@trellis/registry-server';
import { StateJournal } from '../src/persistence/state-journal.js';
import { get, put, serviceCheck, health, type RawReply } from './helpers.js';

const dirs: string[] = [];
const servers: RegistryServer[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-durability-'));
  dirs.push(dir);
  return dir;
}

interface Durable {
  readonly server: RegistryServer;
  readonly url: string;
  readonly consul: Consul;
}

async function start(dataDir: string, clock = new ManualClock(), compactAfterBytes?: number): Promise<Durable> {
  const server = new RegistryServer({
    logLevel: 'silent',
    clock,
    dataDir,
    ...(compactAfterBytes === undefined ? {} : { compactAfterBytes }),
  });
  servers.push(server);
  const { url, port } = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, url, consul: new Consul({ host: '127.0.0.1', port }) };
}

async function stop(running: Durable): Promise<void> {
  await running.server.close();
  servers.splice(servers.indexOf(running.server), 1);
}

/** Every answer a client could compare across a restart: body and X-Consul-Index. */
async function observe(url: string): Promise<Record<string, { status: number; index: string | null; body: string }>> {
  const paths = [
    '/v1/health/service/users',
    '/v1/health/service/orders',
    '/v1/agent/services',
    '/v1/agent/checks',
    '/v1/catalog/services',
    '/v1/kv/?recurse',
    '/v1/kv/config/db',
    '/v1/kv/gone/?recurse',
  ];
  const seen: Record<string, { status: number; index: string | null; body: string }> = {};
  for (const p of paths) {
    const reply: RawReply = await get(`${url}${p}`);
    seen[p] = { status: reply.status, index: reply.headers.get('x-consul-index'), body: reply.text };
  }
  return seen;
}

function journalFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((name) => name.startsWith('journal-'));
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('a registry server with a data directory', () => {
  it('answers the same, with the same indexes, after a restart', async () => {
    const dir = tempDir();
    const clock = new ManualClock();
    const first = await start(dir, clock);
    await first.consul.agent.service.register({
      name: 'users',
      id: 'users-1',
      port: 4000,
      tags: ['v1', 'blue'],
      meta: { zone: 'a' },
      check: { ttl: '10s' } as never,
    });
    await first.consul.agent.check.pass({ id: 'service:users-1', note: 'ready' });
    await first.consul.agent.service.register({ name: 'orders', check: { ttl: '5s', status: 'passing' } as never });
    expect((await put(`${first.url}/v1/agent/check/register`, '{"Name":"mem","TTL":"30s"}')).status).toBe(200);
    expect((await put(`${first.url}/v1/kv/config/db?flags=42`, 'postgres://db')).text).toBe('true');
    expect((await put(`${first.url}/v1/kv/gone/a`, 'x')).text).toBe('true');
    expect((await fetch(`${first.url}/v1/kv/gone/a`, { method: 'DELETE' })).status).toBe(200);
    // A change made by a timer, not a request: the orders check expires.
    clock.advance(6_000);
    const orders = serviceCheck((await health(first.url, 'orders')).entries[0], 'service:orders');
    expect(orders?.Output).toBe('TTL expired');
    const before = await observe(first.url);
    await stop(first);

    const second = await start(dir);
    expect(await observe(second.url)).toEqual(before);
    const kv = JSON.parse((await get(`${second.url}/v1/kv/config/db`)).text) as [{ Flags: number; Value: string }];
    expect(kv[0].Flags).toBe(42);
    expect(Buffer.from(kv[0].Value, 'base64').toString()).toBe('postgres://db');
  });

  it('never moves an index back across a restart, and moves it forward on the next write', async () => {
    const dir = tempDir();
    const first = await start(dir);
    await first.consul.agent.service.register({ name: 'users' });
    await first.consul.agent.service.deregister('users');
    await put(`${first.url}/v1/kv/a`, '1');
    const catalogIndex = Number((await get(`${first.url}/v1/catalog/services`)).headers.get('x-consul-index'));
    const kvIndex = Number((await get(`${first.url}/v1/kv/?recurse`)).headers.get('x-consul-index'));
    const goneIndex = (await health(first.url, 'users')).index;
    expect(goneIndex).toBeGreaterThan(1);
    await stop(first);

    const second = await start(dir);
    expect(Number((await get(`${second.url}/v1/catalog/services`)).headers.get('x-consul-index'))).toBe(catalogIndex);
    expect(Number((await get(`${second.url}/v1/kv/?recurse`)).headers.get('x-consul-index'))).toBe(kvIndex);
    // A read of a service that is gone answers the index of its removal, not 1.
    expect((await health(second.url, 'users')).index).toBe(goneIndex);
    await second.consul.agent.service.register({ name: 'orders' });
    const after = Number((await get(`${second.url}/v1/catalog/services`)).headers.get('x-consul-index'));
    expect(after).toBeGreaterThan(catalogIndex);
  });

  it('keeps removals: a deregistered service and the checks a re-registration replaced stay gone', async () => {
    const dir = tempDir();
    const first = await start(dir);
    await put(
      `${first.url}/v1/agent/service/register`,
      '{"Name":"users","Checks":[{"CheckID":"a","TTL":"10s"},{"CheckID":"b","TTL":"10s"}]}',
    );
    await put(`${first.url}/v1/agent/service/register`, '{"Name":"orders","Check":{"CheckID":"c","TTL":"10s"}}');
    await put(
      `${first.url}/v1/agent/service/register?replace-existing-checks=true`,
      '{"Name":"users","Checks":[{"CheckID":"a","TTL":"10s"}]}',
    );
    await put(`${first.url}/v1/agent/service/deregister/orders`);
    await stop(first);

    const second = await start(dir);
    expect(Object.keys(JSON.parse((await get(`${second.url}/v1/agent/checks`)).text) as object)).toEqual(['a']);
    expect(Object.keys(JSON.parse((await get(`${second.url}/v1/agent/services`)).text) as object)).toEqual(['users']);
  });

  it('gives a check restored from disk a full TTL from the restart to heartbeat again', async () => {
    const dir = tempDir();
    const firstClock = new ManualClock();
    const first = await start(dir, firstClock);
    await first.consul.agent.service.register({ name: 'users', check: { ttl: '10s', status: 'passing' } as never });
    firstClock.advance(9_000);
    await stop(first);

    const clock = new ManualClock();
    const second = await start(dir, clock);
    clock.advance(9_999);
    expect(serviceCheck((await health(second.url, 'users')).entries[0])?.Status).toBe('passing');
    clock.advance(1);
    expect(serviceCheck((await health(second.url, 'users')).entries[0])?.Status).toBe('critical');
  });

  it('compacts the journal into a snapshot past the threshold and restores from both', async () => {
    const dir = tempDir();
    const first = await start(dir, new ManualClock(), 2_000);
    for (let i = 0; i < 40; i++) expect((await put(`${first.url}/v1/kv/keys/${i}`, `value ${i}`)).text).toBe('true');
    expect(fs.existsSync(path.join(dir, 'snapshot.json'))).toBe(true);
    // One journal only: each compaction removes the one it replaced.
    expect(journalFiles(dir)).toHaveLength(1);
    expect(journalFiles(dir)).not.toEqual(['journal-0.jsonl']);
    const before = await get(`${first.url}/v1/kv/keys/?recurse`);
    await stop(first);

    const second = await start(dir);
    const after = await get(`${second.url}/v1/kv/keys/?recurse`);
    expect(after.text).toBe(before.text);
    expect(after.headers.get('x-consul-index')).toBe(before.headers.get('x-consul-index'));
    expect(JSON.parse(after.text)).toHaveLength(40);
  });

  it('drops a torn last journal line with a warning and keeps appending after the whole ones', async () => {
    const dir = tempDir();
    const first = await start(dir);
    await put(`${first.url}/v1/kv/a`, '1');
    await stop(first);
    const [journal] = journalFiles(dir);
    const file = path.join(dir, journal ?? '');
    // What a crash in the middle of a write leaves.
    fs.appendFileSync(file, '{"meta":{"catalogIndex":9},"records":[["kv","b",{"val');

    const warnings: string[] = [];
    const opened = StateJournal.open({ dir, warn: (message) => warnings.push(message) });
    await opened.journal.close();
    expect(warnings).toEqual([expect.stringContaining(file)]);
    expect(warnings[0]).toMatch(/torn last line/);
    expect(opened.state.records.get('kv')?.has('b')).toBe(false);

    const second = await start(dir);
    await put(`${second.url}/v1/kv/c`, '3');
    await stop(second);
    const third = await start(dir);
    expect(JSON.parse((await get(`${third.url}/v1/kv/?keys`)).text)).toEqual(['a', 'c']);
  });

  it('writes nothing for a TTL pass that changes nothing', async () => {
    const dir = tempDir();
    const { consul } = await start(dir);
    await consul.agent.service.register({ name: 'users', check: { ttl: '10s' } as never });
    await consul.agent.check.pass({ id: 'service:users', note: 'ok' });
    const file = path.join(dir, journalFiles(dir)[0] ?? '');
    const size = fs.statSync(file).size;
    for (let i = 0; i < 20; i++) await consul.agent.check.pass({ id: 'service:users', note: 'ok' });
    expect(fs.statSync(file).size).toBe(size);
  });

  it('answers 500 in plain text, acknowledging nothing more, once the journal cannot be written', async () => {
    const dir = tempDir();
    const { url } = await start(dir, new ManualClock(), 1);
    expect((await put(`${url}/v1/kv/a`, '1')).text).toBe('true');
    // Where the next compaction must write its snapshot, a directory: the write fails.
    fs.mkdirSync(path.join(dir, 'snapshot.json.tmp'));
    for (const key of ['b', 'c']) {
      const reply = await put(`${url}/v1/kv/${key}`, '2');
      expect(reply.status).toBe(500);
      expect(reply.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(reply.text).toMatch(/data directory/);
    }
    // Reads still work.
    expect((await get(`${url}/v1/kv/a?raw`)).text).toBe('1');
  });

  it('keeps ACL policies and tokens across a restart', async () => {
    const dir = tempDir();
    const acl = { enabled: true, initialManagementToken: 'root' } as const;
    const first = new RegistryServer({ logLevel: 'silent', dataDir: dir, acl });
    servers.push(first);
    const policy = first.acl?.savePolicy({ name: 'users', rules: 'service_prefix "users" { policy = "write" }' });
    const token = first.acl?.saveToken({ description: 'users', policies: [{ id: policy?.id ?? '' }] });
    const before = first.acl?.exportState();
    await first.close();

    const second = new RegistryServer({ logLevel: 'silent', dataDir: dir, acl });
    servers.push(second);
    expect(second.acl?.exportState()).toEqual(before);
    expect(second.acl?.token(token?.accessorId ?? '')?.secretId).toBe(token?.secretId);
  });

  it('keeps ACL state through a compaction by a server started without ACLs', async () => {
    const dir = tempDir();
    const acl = { enabled: true, initialManagementToken: 'root' } as const;
    const first = new RegistryServer({ logLevel: 'silent', dataDir: dir, acl });
    servers.push(first);
    first.acl?.saveToken({ description: 'kept' });
    const before = first.acl?.exportState();
    await first.close();

    const plain = await start(dir, new ManualClock(), 1);
    expect((await put(`${plain.url}/v1/kv/a`, '1')).text).toBe('true');
    expect(fs.existsSync(path.join(dir, 'snapshot.json'))).toBe(true);
    await stop(plain);

    const third = new RegistryServer({ logLevel: 'silent', dataDir: dir, acl });
    servers.push(third);
    expect(third.acl?.exportState()).toEqual(before);
  });

  it('refuses a data directory that is a file, naming it', () => {
    const dir = tempDir();
    const file = path.join(dir, 'not-a-dir');
    fs.writeFileSync(file, 'x');
    expect(() => new RegistryServer({ logLevel: 'silent', dataDir: file })).toThrow(DataDirError);
    expect(() => new RegistryServer({ logLevel: 'silent', dataDir: file })).toThrow(file);
    expect(() => new RegistryServer({ logLevel: 'silent', dataDir: path.join(file, 'sub') })).toThrow(
      path.join(file, 'sub'),
    );
  });

  it('refuses a corrupt snapshot or journal, naming it, and leaves the data as it was', async () => {
    const dir = tempDir();
    const first = await start(dir, new ManualClock(), 200);
    for (let i = 0; i < 5; i++) await put(`${first.url}/v1/kv/k${i}`, 'v');
    await stop(first);
    const snapshot = path.join(dir, 'snapshot.json');
    const good = fs.readFileSync(snapshot, 'utf8');
    fs.writeFileSync(snapshot, good.slice(0, good.length / 2));
    expect(() => new RegistryServer({ logLevel: 'silent', dataDir: dir })).toThrow(snapshot);
    expect(fs.readFileSync(snapshot, 'utf8')).toBe(good.slice(0, good.length / 2));

    fs.writeFileSync(snapshot, good);
    const journal = path.join(dir, journalFiles(dir)[0] ?? '');
    fs.writeFileSync(journal, 'not json\n{"meta":{},"records":[]}\n');
    expect(() => new RegistryServer({ logLevel: 'silent', dataDir: dir })).toThrow(/corrupt journal at line 1/);
  });

  it('refuses a data directory another server holds, and takes it once that one has stopped', async () => {
    const dir = tempDir();
    const first = await start(dir);
    expect(() => new RegistryServer({ logLevel: 'silent', dataDir: dir })).toThrow(
      `in use by process ${process.pid} (this one)`,
    );
    await put(`${first.url}/v1/kv/a`, '1');
    await stop(first);
    expect(fs.existsSync(path.join(dir, 'LOCK'))).toBe(false);

    const second = await start(dir);
    expect((await get(`${second.url}/v1/kv/a?raw`)).text).toBe('1');
  });

  it('takes over the lock file of a process that no longer runs (a server killed with SIGKILL)', async () => {
    const dir = tempDir();
    const gone = spawnSync(process.execPath, ['-e', '']);
    expect(gone.status).toBe(0);
    fs.writeFileSync(path.join(dir, 'LOCK'), `${gone.pid}\n`);
    const server = await start(dir);
    expect(fs.readFileSync(path.join(dir, 'LOCK'), 'utf8').split('\n')[0]).toBe(String(process.pid));
    await stop(server);
  });

  it('lets go of the lock when it refuses the data', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'snapshot.json'), '{');
    expect(() => new RegistryServer({ logLevel: 'silent', dataDir: dir })).toThrow(/corrupt snapshot/);
    expect(fs.existsSync(path.join(dir, 'LOCK'))).toBe(false);
  });
});

describe('the state journal', () => {
  it('commits every change of one event-loop turn with one fsync', async () => {
    const dir = tempDir();
    const { journal } = StateJournal.open({ dir });
    const values = new Map<string, number>();
    journal.addSource({ kind: 'n', keys: () => values.keys(), read: (key) => values.get(key) });
    for (let i = 0; i < 1_000; i++) {
      values.set(String(i), i);
      journal.touch('n', String(i));
    }
    await journal.durable();
    expect(journal.commits).toBe(1);
    await journal.close();
    const { journal: reopened, state } = StateJournal.open({ dir });
    await reopened.close();
    expect(state.records.get('n')?.size).toBe(1_000);
    expect(state.records.get('n')?.get('999')).toBe(999);
  });
});
