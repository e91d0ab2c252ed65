import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

// `npm run demo` killed with -9, or its terminal closed, must not leave the registry and the
// services running on their ports.
const launcher = fileURLToPath(new URL('../dist/main.js', import.meta.url));

interface Demo {
  readonly process: ChildProcess;
  readonly exited: Promise<number | string>;
  /** The launcher's child processes once everything is up. */
  readonly children: readonly number[];
}

async function startDemo(): Promise<Demo> {
  const child = spawn(process.execPath, [launcher], {
    env: { ...process.env, REGISTRY_PORT: '0', FORUM_PORT: '0', TRELLIS_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.startsWith('Everything is up')) resolve();
    });
    void exited.then((code) => reject(new Error(`the demo exited (${code}) before it was up`)));
  });
  return { process: child, exited, children: childrenOf(child.pid!) };
}

function childrenOf(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The fields after the command's closing parenthesis: state, then the parent's pid.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// No event tells us that a process which is not our child has ended: look every 50 ms, bounded.
async function waitUntilGone(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = pids.filter(alive);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    left = left.filter(alive);
  }
  return left;
}

describe('the demo launcher', () => {
  const started: number[] = [];
  afterAll(() => {
    for (const pid of started.filter(alive)) process.kill(pid, 'SIGKILL');
  });

  it('takes the registry and every service down with it when it is killed with -9', async () => {
    const demo = await startDemo();
    started.push(...demo.children);
    // The registry, two users instances and the forum.
    expect(demo.children).toHaveLength(4);
    demo.process.kill('SIGKILL');
    await demo.exited;
    expect(await waitUntilGone(demo.children, 10_000)).toEqual([]);
  }, 40_000);

  it('stops everything gracefully and exits 0 when its terminal closes (SIGHUP)', async () => {
    const demo = await startDemo();
    started.push(...demo.children);
    demo.process.kill('SIGHUP');
    expect(await demo.exited).toBe(0);
    expect(demo.children.filter(alive)).toEqual([]);
  }, 40_000);
});
