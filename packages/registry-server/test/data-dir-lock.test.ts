import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { RegistryServer } from '@trellis/registry-server';
import { exited, killCliChildren, listeningUrl } from './cli-process.js';

const dirs: string[] = [];
const servers: RegistryServer[] = [];
const children: ChildProcess[] = [];
// The servers that are PID 1 of their own namespace (host pids), killed directly in afterEach:
// a SIGKILL to unshare alone can leave them running.
const pid1s: number[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-lock-'));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
  for (const pid of pid1s.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited(child);
    }
  }
  await killCliChildren();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. */
function startTime(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
}

const boot = (): string => fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

function open(dir: string): RegistryServer {
  const server = new RegistryServer({ logLevel: 'silent', dataDir: dir });
  servers.push(server);
  return server;
}

const onLinux = fs.existsSync('/proc/self/stat') ? describe : describe.skip;

onLinux('the data directory lock (pid and process start time)', () => {
  it('takes over a lock naming this very pid with another start time, as a restarted PID 1 finds it', () => {
    const dir = tempDir();
    // What a killed PID 1 leaves for the next PID 1 of the container.
    const stale = `${process.pid}\nstart ${Number(startTime(process.pid)) + 12_345}\nboot ${boot()}\n`;
    fs.writeFileSync(path.join(dir, 'LOCK'), stale);
    open(dir);
    expect(fs.readFileSync(path.join(dir, 'LOCK'), 'utf8')).toBe(
      `${process.pid}\nstart ${startTime(process.pid)}\nboot ${boot()}\n`,
    );
  });

  it('takes over a lock of the old pid-only format naming this pid, which this process never wrote', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'LOCK'), `${process.pid}\n`);
    open(dir);
  });

  it('refuses a lock of a live process that started when the lock says, and takes it once the pid is reused', async () => {
    const dir = tempDir();
    const owner = spawn(process.execPath, ['-e', 'process.stdin.resume()'], { stdio: ['pipe', 'ignore', 'ignore'] });
    children.push(owner);
    const pid = owner.pid ?? 0;
    fs.writeFileSync(path.join(dir, 'LOCK'), `${pid}\nstart ${startTime(pid)}\nboot ${boot()}\n`);
    expect(() => open(dir)).toThrow(`in use by process ${pid};`);
    // The same pid, another process (a reuse after the owner died): not the owner.
    fs.writeFileSync(path.join(dir, 'LOCK'), `${pid}\nstart ${Number(startTime(pid)) - 1}\nboot ${boot()}\n`);
    open(dir);
  });

  it('takes over a lock from another boot', () => {
    const dir = tempDir();
    const other = '00000000-0000-0000-0000-000000000000';
    fs.writeFileSync(path.join(dir, 'LOCK'), `${process.pid}\nstart ${startTime(process.pid)}\nboot ${other}\n`);
    open(dir);
  });
});

// As root with util-linux: the server really is PID 1 of a new PID namespace, as in a container.
// --kill-child: when unshare dies (the afterEach kills it), so does the server.
const canUnshare =
  process.getuid?.() === 0 && spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0;

(canUnshare ? describe : describe.skip)('a registry server that is PID 1', () => {
  const cli = new URL('../dist/cli.js', import.meta.url).pathname;

  /** Starts the CLI as PID 1 of a new PID namespace; resolves with it once it listens. */
  async function startAsPid1(dir: string): Promise<{ child: ChildProcess; url: string }> {
    const child = spawn(
      'unshare',
      [
        '--pid',
        '--fork',
        '--mount-proc',
        process.execPath,
        cli,
        '--port',
        '0',
        '--log-level',
        'warn',
        '--data-dir',
        dir,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    const url = await listeningUrl(child);
    pid1s.push(Number(fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim()));
    return { child, url };
  }

  it('starts again after kill -9, instead of taking its own stale lock for a live one', async () => {
    const dir = tempDir();
    const first = await startAsPid1(dir);
    expect(await (await fetch(`${first.url}/v1/kv/a`, { method: 'PUT', body: '1' })).text()).toBe('true');
    expect(fs.readFileSync(path.join(dir, 'LOCK'), 'utf8').split('\n')[0]).toBe('1');
    // The server is unshare's child; SIGKILL to it ends the namespace, as docker kill does.
    const inner = pid1s[0] ?? 0;
    const done = exited(first.child);
    process.kill(inner, 'SIGKILL');
    await done;
    expect(fs.existsSync(path.join(dir, 'LOCK'))).toBe(true);

    const second = await startAsPid1(dir);
    expect(await (await fetch(`${second.url}/v1/kv/a?raw`)).text()).toBe('1');
  });
});
