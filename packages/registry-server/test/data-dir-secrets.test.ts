import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '@trellis/core';
import { RegistryServer } from '@trellis/registry-server';
import { StateJournal } from '../src/persistence/state-journal.js';
import { exited, killCliChildren, spawnCli } from './cli-process.js';

const dirs: string[] = [];
const servers: RegistryServer[] = [];
const root = 'root-secret';

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-secrets-'));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
  await killCliChildren();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

const modeOf = (file: string): string => (fs.statSync(file).mode & 0o777).toString(8);

async function start(dataDir: string, compactAfterBytes?: number): Promise<{ server: RegistryServer; url: string }> {
  const server = new RegistryServer({
    logLevel: 'silent',
    clock: new ManualClock(),
    dataDir,
    acl: { enabled: true, initialManagementToken: root },
    ...(compactAfterBytes === undefined ? {} : { compactAfterBytes }),
  });
  servers.push(server);
  const { url } = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, url };
}

async function stop(server: RegistryServer): Promise<void> {
  await server.close();
  servers.splice(servers.indexOf(server), 1);
}

async function status(url: string, token: string): Promise<number> {
  const res = await fetch(`${url}/v1/acl/token/self`, { headers: { 'X-Consul-Token': token } });
  await res.arrayBuffer();
  return res.status;
}

describe('secrets on disk', () => {
  it('creates the data directory 0700 and its journal, snapshot and lock 0600', async () => {
    const dir = path.join(tempDir(), 'data');
    const { server, url } = await start(dir, 1);
    await fetch(`${url}/v1/kv/a`, { method: 'PUT', body: '1', headers: { 'X-Consul-Token': root } });
    expect(modeOf(dir)).toBe('700');
    const files = fs.readdirSync(dir);
    expect(files).toEqual(expect.arrayContaining(['LOCK', 'snapshot.json']));
    for (const name of files) expect([name, modeOf(path.join(dir, name))]).toEqual([name, '600']);
    await stop(server);
  });

  it('tightens an existing directory and files that others may read, and says so', async () => {
    const dir = tempDir();
    const first = await start(dir);
    await stop(first.server);
    fs.chmodSync(dir, 0o755);
    const journal = path.join(dir, fs.readdirSync(dir).find((name) => name.startsWith('journal-')) ?? '');
    fs.chmodSync(journal, 0o644);
    const warnings: string[] = [];
    const { journal: opened } = StateJournal.open({ dir, warn: (message) => warnings.push(message) });
    await opened.close();
    expect(modeOf(dir)).toBe('700');
    expect(modeOf(journal)).toBe('600');
    expect(warnings).toEqual([
      expect.stringContaining(`${dir} was readable by others (mode 755); changed to 700`),
      expect.stringContaining(`${journal} was readable by others (mode 644); changed to 600`),
    ]);
  });
});

describe('rotating the management token', () => {
  it('gives it a new secret by API, revokes the old one, and keeps it revoked across a restart', async () => {
    const dir = tempDir();
    const first = await start(dir);
    const res = await fetch(`${first.url}/v1/acl/token/self/rotate`, {
      method: 'PUT',
      headers: { 'X-Consul-Token': root },
    });
    expect(res.status).toBe(200);
    const rotated = (await res.json()) as { SecretID: string; Policies: { Name: string }[] };
    expect(rotated.SecretID).not.toBe(root);
    expect(rotated.Policies.map((p) => p.Name)).toEqual(['global-management']);
    expect(await status(first.url, root)).toBe(403);
    expect(await status(first.url, rotated.SecretID)).toBe(200);
    await stop(first.server);

    // The same --acl-initial-token on the next start does not bring the old secret back.
    const second = await start(dir);
    expect(second.server.acl?.initialTokenRevoked).toBe(true);
    expect(await status(second.url, root)).toBe(403);
    expect(await status(second.url, rotated.SecretID)).toBe(200);
  });

  it('rotates it from the CLI, which prints the new secret', async () => {
    const { url } = await start(tempDir());
    const child = spawnCli(['acl', 'rotate-token', '--address', url, '--new-secret', 'next-secret'], {
      ...process.env,
      TRELLIS_ACL_TOKEN: root,
    });
    let stdout = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    expect(await exited(child)).toBe(0);
    expect(stdout).toBe('next-secret\n');
    expect(await status(url, root)).toBe(403);
    expect(await status(url, 'next-secret')).toBe(200);

    const refused = spawnCli(['acl', 'rotate-token', '--address', url, '--token', root]);
    expect(await exited(refused)).toBe(1);
  });
});
