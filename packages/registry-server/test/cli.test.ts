import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from '@jest/globals';
import Consul from 'consul';

// The built bin; `npx tsc -b packages/registry-server` first.
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

const children: ChildProcess[] = [];

function start(args: string[]): ChildProcess {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return child;
}

/** Settles with the exit code (or signal name) of the child. */
function exited(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.exitCode ?? child.signalCode ?? '');
  return once(child, 'exit').then(([code, signal]) => (code as number | null) ?? (signal as string));
}

/** The first stdout line, or a rejection with stderr when the child exits before printing one. */
async function firstLine(child: ChildProcess): Promise<string> {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const line = new Promise<string>((resolve) => lines.once('line', resolve));
  const early = exited(child).then((code) => Promise.reject(new Error(`exited (${code}) first:\n${stderr}`)));
  try {
    return await Promise.race([line, early]);
  } finally {
    lines.close();
    early.catch(() => undefined);
  }
}

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited(child);
    }
  }
});

describe('the trellis-registry CLI', () => {
  it('prints the URL with the real port, serves Consul clients, and exits 0 on SIGTERM', async () => {
    const child = start(['--port', '0', '--log-level', 'warn']);
    const line = await firstLine(child);
    const match = /^trellis-registry listening on (http:\/\/127\.0\.0\.1:(\d+))$/.exec(line);
    expect(match).not.toBeNull();
    const port = Number(match?.[2]);
    expect(port).toBeGreaterThan(0);

    const consul = new Consul({ host: '127.0.0.1', port });
    await consul.agent.service.register({
      name: 'users',
      port: 4000,
      check: { ttl: '10s', status: 'passing' } as never,
    });
    const entries = (await consul.health.service({ service: 'users', passing: true })) as {
      Service: { Port: number };
    }[];
    expect(entries.map((e) => e.Service.Port)).toEqual([4000]);

    const code = exited(child);
    child.kill('SIGTERM');
    expect(await code).toBe(0);
  });

  it('exits 0 on SIGINT too', async () => {
    const child = start(['--port', '0', '--log-level', 'silent']);
    await firstLine(child);
    const code = exited(child);
    child.kill('SIGINT');
    expect(await code).toBe(0);
  });

  it('exits 2 with a message naming the option for a bad option', async () => {
    for (const args of [['--port', 'http'], ['--port', '70000'], ['--log-level', 'loud'], ['--verbose']]) {
      const child = start(args);
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      expect(await exited(child)).toBe(2);
      expect(stderr).toContain(args[0]);
    }
  });
});
