import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from '@jest/globals';
import { exited, killCliChildren, listeningUrl, spawnCli, stderrOf } from './cli-process.js';

const dirs: string[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-crash-'));
  dirs.push(dir);
  return dir;
}

/** Starts the CLI on `dir` and resolves with its URL once it prints it. */
async function startOn(dir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawnCli(['--port', '0', '--log-level', 'silent', '--data-dir', dir]);
  return { child, url: await listeningUrl(child) };
}

async function kill9(child: ChildProcess): Promise<void> {
  const done = exited(child);
  child.kill('SIGKILL');
  expect(await done).toBe('SIGKILL');
}

/** One write of the crash test. */
interface Write {
  readonly method: 'PUT' | 'DELETE';
  readonly path: string;
  readonly body?: string;
}

afterEach(async () => {
  await killCliChildren();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('a registry server killed with SIGKILL', () => {
  it('keeps every write it acknowledged, killed the moment each answer arrives', async () => {
    const dir = tempDir();
    const register: Write = {
      method: 'PUT',
      path: '/v1/agent/service/register',
      body: '{"Name":"users","Port":4000,"Check":{"TTL":"30s"}}',
    };
    const pass: Write = { method: 'PUT', path: '/v1/agent/check/pass/service:users?note=up' };
    const kvDb: Write = { method: 'PUT', path: '/v1/kv/config/db?flags=7', body: 'postgres://db' };
    const orders: Write = { method: 'PUT', path: '/v1/agent/service/register', body: '{"Name":"orders"}' };
    const kvCache: Write = { method: 'PUT', path: '/v1/kv/config/cache', body: 'redis://cache' };
    const delCache: Write = { method: 'DELETE', path: '/v1/kv/config/cache' };
    const deregOrders: Write = { method: 'PUT', path: '/v1/agent/service/deregister/orders' };
    const writes = [register, pass, kvDb, orders, kvCache, delCache, deregOrders];
    let lastIndex = 1;
    for (const write of writes) {
      const { child, url } = await startOn(dir);
      const reply = await fetch(`${url}${write.path}`, {
        method: write.method,
        ...(write.body === undefined ? {} : { body: write.body }),
      });
      // The answer is here: from now on the write must survive anything.
      const killed = kill9(child);
      expect(reply.status).toBe(200);
      await reply.arrayBuffer();
      await killed;

      const again = await startOn(dir);
      const services = (await (await fetch(`${again.url}/v1/agent/services`)).json()) as Record<string, unknown>;
      const index = Number((await fetch(`${again.url}/v1/kv/?recurse`)).headers.get('x-consul-index'));
      expect(index).toBeGreaterThanOrEqual(lastIndex);
      lastIndex = index;
      const done = writes.slice(0, writes.indexOf(write) + 1);
      const has = (w: Write): boolean => done.includes(w);
      expect('users' in services).toBe(has(register));
      expect('orders' in services).toBe(has(orders) && !has(deregOrders));
      if (has(pass)) {
        const checks = (await (await fetch(`${again.url}/v1/agent/checks`)).json()) as Record<
          string,
          { Status: string; Output: string }
        >;
        expect(checks['service:users']).toMatchObject({ Status: 'passing', Output: 'up' });
      }
      const db = await fetch(`${again.url}/v1/kv/config/db`);
      expect(db.status).toBe(has(kvDb) ? 200 : 404);
      if (db.status === 200) expect(await db.json()).toMatchObject([{ Flags: 7 }]);
      else await db.arrayBuffer();
      const cache = await fetch(`${again.url}/v1/kv/config/cache?raw`);
      const cacheThere = has(kvCache) && !has(delCache);
      expect(cache.status).toBe(cacheThere ? 200 : 404);
      if (cacheThere) expect(await cache.text()).toBe('redis://cache');
      else await cache.arrayBuffer();
      await kill9(again.child);
    }
    // Fourteen process starts: on a busy two-core machine that alone can take 20 s.
  }, 60_000);

  it('keeps every answered write of a burst, killed at the first answer', async () => {
    const dir = tempDir();
    const { child, url } = await startOn(dir);
    const answered: string[] = [];
    let killed: Promise<void> | undefined;
    const keys = Array.from({ length: 50 }, (_, i) => `burst/${i}`);
    await Promise.allSettled(
      keys.map(async (key) => {
        const reply = await fetch(`${url}/v1/kv/${key}`, { method: 'PUT', body: key });
        if ((await reply.text()) === 'true') answered.push(key);
        killed ??= kill9(child);
      }),
    );
    await killed;
    expect(answered.length).toBeGreaterThan(0);

    const again = await startOn(dir);
    const kept = (await (await fetch(`${again.url}/v1/kv/burst/?keys`)).json()) as string[];
    for (const key of answered) expect(kept).toContain(key);
  });

  it('exits 1 naming the path for a data directory that is a file', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, '');
    const child = spawnCli(['--port', '0', '--data-dir', file]);
    const stderr = stderrOf(child);
    expect(await exited(child)).toBe(1);
    expect(await stderr).toContain(file);
  });

  it('exits 2 for --data-dir with --dev, and says where state is kept without either', async () => {
    const both = spawnCli(['--port', '0', '--dev', '--data-dir', tempDir()]);
    expect(await exited(both)).toBe(2);

    const plain = spawnCli(['--port', '0', '--log-level', 'silent']);
    const plainErr = stderrOf(plain);
    const lines = createInterface({ input: plain.stdout as NodeJS.ReadableStream });
    await new Promise((resolve) => lines.once('line', resolve));
    plain.kill('SIGTERM');
    expect(await plainErr).toMatch(/state is kept in memory.*--data-dir/);

    const dev = spawnCli(['--port', '0', '--log-level', 'silent', '--dev']);
    const devErr = stderrOf(dev);
    const devLines = createInterface({ input: dev.stdout as NodeJS.ReadableStream });
    await new Promise((resolve) => devLines.once('line', resolve));
    dev.kill('SIGTERM');
    expect(await devErr).toBe('');
  });
});
