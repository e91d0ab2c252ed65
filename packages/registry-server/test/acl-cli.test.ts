import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from '@jest/globals';

// The built bin; `npx tsc -b packages/registry-server` first.
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

const children: ChildProcess[] = [];

function start(args: string[], token?: string): ChildProcess {
  const env = { ...process.env };
  delete env['TRELLIS_ACL_INITIAL_TOKEN'];
  if (token !== undefined) env['TRELLIS_ACL_INITIAL_TOKEN'] = token;
  const child = spawn(process.execPath, [cli, '--port', '0', '--log-level', 'silent', '--dev', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  children.push(child);
  return child;
}

function exited(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve(child.exitCode ?? child.signalCode ?? '');
  }
  return once(child, 'exit').then(([code, signal]) => (code as number | null) ?? (signal as string));
}

function stderrOf(child: ChildProcess): () => string {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return () => stderr;
}

/** The URL of the first stdout line, or a rejection with stderr when the child exits first. */
async function listening(child: ChildProcess): Promise<string> {
  const stderr = stderrOf(child);
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const line = new Promise<string>((resolve) => lines.once('line', resolve));
  const early = exited(child).then((code) => Promise.reject(new Error(`exited (${code}) first:\n${stderr()}`)));
  try {
    const first = await Promise.race([line, early]);
    return first.replace('trellis-registry listening on ', '');
  } finally {
    lines.close();
    early.catch(() => undefined);
  }
}

async function status(url: string, token?: string): Promise<number> {
  const res = await fetch(`${url}/v1/agent/self`, token === undefined ? {} : { headers: { 'X-Consul-Token': token } });
  await res.arrayBuffer();
  return res.status;
}

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited(child);
    }
  }
});

describe('the trellis-registry CLI with --acl', () => {
  it('exits 2 naming both ways to give the initial token when there is none', async () => {
    const child = start(['--acl']);
    const stderr = stderrOf(child);
    expect(await exited(child)).toBe(2);
    expect(stderr()).toContain('--acl-initial-token');
    expect(stderr()).toContain('TRELLIS_ACL_INITIAL_TOKEN');
  });

  it('takes the initial management token from the environment', async () => {
    const url = await listening(start(['--acl'], 'env-secret'));
    expect(await status(url)).toBe(403);
    expect(await status(url, 'env-secret')).toBe(200);
  });

  it('lets --acl-initial-token win over the environment', async () => {
    const url = await listening(start(['--acl', '--acl-initial-token', 'flag-secret'], 'env-secret'));
    expect(await status(url, 'flag-secret')).toBe(200);
    expect(await status(url, 'env-secret')).toBe(403);
  });

  it('keeps ACLs off without --acl, even with the token in the environment', async () => {
    const url = await listening(start([], 'env-secret'));
    expect(await status(url)).toBe(200);
  });
});
