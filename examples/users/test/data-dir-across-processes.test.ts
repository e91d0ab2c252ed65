import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RegistryServer } from '@trellis/registry-server';

// The built main module (npm test builds first), as the demo runs it.
const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));

interface Run {
  readonly child: ChildProcess;
  readonly stderr: string[];
  readonly exited: Promise<number | null>;
  /** The URL of its "users listening on <url> as <id>" line, within 15 s. */
  readonly listening: Promise<string>;
}

function run(env: Record<string, string>): Run {
  const child = spawn(process.execPath, [main], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', TRELLIS_LOG_LEVEL: 'warn', TRELLIS_DRAIN_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => stderr.push(...chunk.split('\n').filter(Boolean)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const listening = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no "listening" line within 15 s; stderr: ${stderr.join(' | ')}`)),
      15_000,
    );
    let seen = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      seen += chunk;
      const match = /^users listening on (http:\/\/\S+) as /m.exec(seen);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before listening; stderr: ${stderr.join(' | ')}`));
    });
  });
  listening.catch(() => undefined);
  return { child, stderr, exited, listening };
}

describe('users: its SQLite file in TRELLIS_DATA_DIR, across processes', () => {
  let dir: string;
  const runs: Run[] = [];
  let registry: RegistryServer | undefined;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'trellis-users-dir-'));
  });
  afterEach(async () => {
    for (const r of runs.splice(0)) {
      if (r.child.exitCode === null) r.child.kill('SIGTERM');
      await r.exited;
    }
    await registry?.close();
    registry = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('exits with status 2 and one line naming TRELLIS_DATA_DIR when it is not a folder', async () => {
    const file = path.join(dir, 'a-file');
    writeFileSync(file, 'not a folder');
    const started = run({ TRELLIS_DATA_DIR: file, TRELLIS_REGISTRY_URL: 'http://127.0.0.1:1' });
    runs.push(started);
    expect(await started.exited).toBe(2);
    expect(started.stderr).toEqual([
      expect.stringMatching(
        /^users: TRELLIS_DATA_DIR=\S+a-file cannot hold users\.sqlite \(\w+\); set it to a folder$/,
      ),
    ]);
  });

  it('starts two instances at once on one new file, and each sees what the other writes', async () => {
    registry = new RegistryServer({ logLevel: 'silent' });
    const { url: registryUrl } = await registry.listen({ port: 0, host: '127.0.0.1' });
    const env = { TRELLIS_DATA_DIR: dir, TRELLIS_REGISTRY_URL: registryUrl };
    const pair = [run(env), run(env)];
    runs.push(...pair);
    const [first, second] = await Promise.all(pair.map((r) => r.listening));
    const signUp = await fetch(`${first}/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'hedy', password: 'frequency-hopping' }),
    });
    expect(signUp.status).toBe(201);
    const found = await fetch(`${second}/users?name=hedy`);
    expect(((await found.json()) as { users: Array<{ name: string }> }).users.map((u) => u.name)).toEqual(['hedy']);
  });
});
