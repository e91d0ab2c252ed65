import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { TrellisError } from '@trellis/core';
import { DataCorruptError, DataDirError, RegistryServer } from '@trellis/registry-server';
import { exited, killCliChildren, spawnCli, stderrOf } from './cli-process.js';
import { get, put } from './helpers.js';

const dirs: string[] = [];
const servers: RegistryServer[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-integrity-'));
  dirs.push(dir);
  return dir;
}

async function start(dataDir: string, options: { compactAfterBytes?: number } = {}) {
  const server = new RegistryServer({
    logLevel: 'silent',
    dataDir,
    ...(options.compactAfterBytes === undefined ? {} : { compactAfterBytes: options.compactAfterBytes }),
  });
  servers.push(server);
  const { url } = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, url };
}

async function stop(server: RegistryServer): Promise<void> {
  await server.close();
  servers.splice(servers.indexOf(server), 1);
}

/** Every file of the directory with its bytes, to compare before and after a refused start. */
function contents(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).sort()) files[name] = fs.readFileSync(path.join(dir, name)).toString('hex');
  return files;
}

function journalOf(dir: string): string {
  const name = fs.readdirSync(dir).find((file) => /^journal-\d+\.jsonl$/.test(file));
  if (name === undefined) throw new Error(`no journal in ${dir}`);
  return path.join(dir, name);
}

/**
 * Flips one bit of a digit in `bytes` from `from` on (0 <-> 1, 2 <-> 3, ...): the JSON stays
 * valid and says another number, which is what a disk error looks like to a parser.
 */
function flipDigit(bytes: Buffer, from: number): Buffer {
  const copy = Buffer.from(bytes);
  for (let i = from; i < copy.length; i++) {
    const byte = copy[i] ?? 0;
    if (byte >= 0x30 && byte <= 0x39) {
      copy[i] = byte ^ 1;
      return copy;
    }
  }
  throw new Error('no digit to flip');
}

function refusal(dir: string): unknown {
  try {
    servers.push(new RegistryServer({ logLevel: 'silent', dataDir: dir }));
  } catch (error) {
    return error;
  }
  throw new Error('the server started');
}

// What the version before checksums wrote: the same lines and snapshot, without `crc32`, and
// the snapshot of version 1.
function unseal(file: string): void {
  const text = fs.readFileSync(file, 'utf8').replace(/,"crc32":"[0-9a-f]{8}"\}(\n|$)/g, '}$1');
  fs.writeFileSync(file, text.replace('"version":2,', '"version":1,'));
}

afterEach(async () => {
  await killCliChildren();
  await Promise.all(servers.splice(0).map((server) => server.close()));
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('a data directory with a damaged record', () => {
  it('refuses a journal with one byte flipped in a middle record, naming file and line, and changes nothing', async () => {
    const dir = tempDir();
    const { server, url } = await start(dir);
    for (let i = 0; i < 5; i++) expect((await put(`${url}/v1/kv/k${i}`, `value-${i}`)).text).toBe('true');
    await stop(server);
    const journal = journalOf(dir);
    const lines = fs.readFileSync(journal, 'utf8').split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(5);
    const middle = Math.floor(lines.length / 2);
    const offset = Buffer.byteLength(
      lines
        .slice(0, middle)
        .map((line) => `${line}\n`)
        .join(''),
    );
    fs.writeFileSync(journal, flipDigit(fs.readFileSync(journal), offset + lines[middle]!.indexOf('"records"')));
    const before = contents(dir);

    const error = refusal(dir);
    expect(error).toBeInstanceOf(DataCorruptError);
    expect(error).toBeInstanceOf(DataDirError);
    expect(TrellisError.hasCode(error, 'DATA_CORRUPT')).toBe(true);
    expect(error).toMatchObject({ path: journal, line: middle + 1 });
    expect((error as Error).message).toContain(`journal at line ${middle + 1}`);
    expect((error as Error).message).toContain(journal);
    expect((error as Error).message).toMatch(/checksum/);
    expect(contents(dir)).toEqual(before);
  });

  it('refuses a snapshot with one byte flipped, naming it, and changes nothing', async () => {
    const dir = tempDir();
    const { server, url } = await start(dir, { compactAfterBytes: 300 });
    for (let i = 0; i < 10; i++) expect((await put(`${url}/v1/kv/k${i}`, `value-${i}`)).text).toBe('true');
    await stop(server);
    const snapshot = path.join(dir, 'snapshot.json');
    const bytes = fs.readFileSync(snapshot);
    fs.writeFileSync(snapshot, flipDigit(bytes, bytes.indexOf('"records"')));
    const before = contents(dir);

    const error = refusal(dir);
    expect(error).toBeInstanceOf(DataCorruptError);
    expect(error).toMatchObject({ code: 'DATA_CORRUPT', path: snapshot, line: undefined });
    expect((error as Error).message).toMatch(/corrupt snapshot \(fails its checksum/);
    expect(contents(dir)).toEqual(before);
  });

  it('refuses a whole last line with a wrong checksum: damage, not a torn write', async () => {
    const dir = tempDir();
    const { server, url } = await start(dir);
    for (let i = 0; i < 3; i++) await put(`${url}/v1/kv/k${i}`, 'v');
    await stop(server);
    const journal = journalOf(dir);
    const text = fs.readFileSync(journal);
    const last = text.lastIndexOf('\n', text.length - 2) + 1;
    const lines = text.toString('utf8').split('\n').length - 1;
    // With its newline, and without (complete JSON all the same).
    for (const damaged of [flipDigit(text, last), flipDigit(text, last).subarray(0, -1)]) {
      fs.writeFileSync(journal, damaged);
      expect(refusal(dir)).toMatchObject({ code: 'DATA_CORRUPT', path: journal, line: lines });
      expect(fs.readFileSync(journal)).toEqual(damaged);
    }
  });

  it('drops a torn last line and keeps every acknowledged write', async () => {
    const dir = tempDir();
    const { server, url } = await start(dir);
    for (let i = 0; i < 20; i++) expect((await put(`${url}/v1/kv/k${i}`, `value-${i}`)).text).toBe('true');
    await stop(server);
    const journal = journalOf(dir);
    const whole = fs.readFileSync(journal);
    const lastLine = whole.subarray(whole.lastIndexOf('\n', whole.length - 2) + 1);
    // What kill -9 in the middle of the next commit's write leaves: a prefix of a line.
    for (const cut of [1, Math.floor(lastLine.length / 2), lastLine.length - 2]) {
      fs.writeFileSync(journal, Buffer.concat([whole, lastLine.subarray(0, cut)]));
      const again = await start(dir);
      for (let i = 0; i < 20; i++) expect((await get(`${again.url}/v1/kv/k${i}?raw`)).text).toBe(`value-${i}`);
      await stop(again.server);
      expect(fs.readFileSync(journal)).toEqual(whole);
    }
  });

  it('exits the CLI with one line naming the file and line', async () => {
    const dir = tempDir();
    const { server, url } = await start(dir);
    await put(`${url}/v1/kv/a`, '1');
    await stop(server);
    const journal = journalOf(dir);
    fs.writeFileSync(journal, flipDigit(fs.readFileSync(journal), 0));

    const child = spawnCli(['--port', '0', '--data-dir', dir]);
    const stderr = stderrOf(child);
    expect(await exited(child)).toBe(1);
    const lines = (await stderr).trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^trellis-registry: data directory: corrupt journal at line 1 \(fails its checksum/);
    expect(lines[0]).toContain(journal);
  });
});

describe('a data directory written before checksums', () => {
  it('loads, and is rewritten with checksums at once', async () => {
    const dir = tempDir();
    const first = await start(dir, { compactAfterBytes: 400 });
    for (let i = 0; i < 12; i++) expect((await put(`${first.url}/v1/kv/k${i}`, `value-${i}`)).text).toBe('true');
    await stop(first.server);
    const journal = journalOf(dir);
    expect(fs.readFileSync(journal, 'utf8')).toContain('"crc32"');
    unseal(path.join(dir, 'snapshot.json'));
    unseal(journal);
    expect(fs.readFileSync(journal, 'utf8')).not.toContain('"crc32"');
    expect(fs.readFileSync(path.join(dir, 'snapshot.json'), 'utf8')).toMatch(/"version":1,.*\}$/);

    const second = await start(dir);
    for (let i = 0; i < 12; i++) expect((await get(`${second.url}/v1/kv/k${i}?raw`)).text).toBe(`value-${i}`);
    // Rewritten before the server took a request: a sealed snapshot, and no unsealed journal.
    expect(fs.existsSync(journal)).toBe(false);
    expect(fs.readFileSync(path.join(dir, 'snapshot.json'), 'utf8')).toMatch(
      /^\{"format":"trellis-registry-snapshot","version":2,.*,"crc32":"[0-9a-f]{8}"\}$/,
    );
    await put(`${second.url}/v1/kv/after`, 'x');
    await stop(second.server);
    expect(fs.readFileSync(journalOf(dir), 'utf8')).toMatch(/^(\{.*,"crc32":"[0-9a-f]{8}"\}\n)+$/);

    const third = await start(dir);
    expect((await get(`${third.url}/v1/kv/k11?raw`)).text).toBe('value-11');
    expect((await get(`${third.url}/v1/kv/after?raw`)).text).toBe('x');
  });

  it('refuses a line without a checksum among lines with one', async () => {
    const dir = tempDir();
    const { server, url } = await start(dir);
    for (let i = 0; i < 3; i++) await put(`${url}/v1/kv/k${i}`, 'v');
    await stop(server);
    const journal = journalOf(dir);
    const lines = fs.readFileSync(journal, 'utf8').split('\n');
    lines[1] = lines[1]!.replace(/,"crc32":"[0-9a-f]{8}"\}$/, '}');
    fs.writeFileSync(journal, lines.join('\n'));
    expect(refusal(dir)).toMatchObject({ code: 'DATA_CORRUPT', path: journal, line: 2 });
  });
});
