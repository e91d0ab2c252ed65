import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { alive, childrenOf, portIsFree, waitUntilGone } from '../../../packages/registry-server/test/process-tree.js';

// `npm run demo` must leave no process and no port behind however it ends: stopped (Ctrl-C,
// SIGTERM, its terminal closing) it stops each service itself; killed with -9, each service sees
// its IPC channel close and stops itself (exit-with-parent.ts).
const launcher = fileURLToPath(new URL('../dist/main.js', import.meta.url));

interface Demo {
  readonly process: ChildProcess;
  readonly exited: Promise<number | string>;
  /** The launcher's child processes at the moment `until` was printed. */
  readonly children: readonly number[];
  /** The ports of the URLs it printed. */
  readonly ports: readonly number[];
}

const started: number[] = [];
const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-orphans-'));
afterAll(() => {
  for (const pid of started.filter(alive)) process.kill(pid, 'SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

/** The registry, two users and two mail instances, the forum, the chat and the gateway. */
const processes = 8;

/** Starts the demo and resolves once it prints a line matching `until`. */
async function startDemo(until: RegExp, logLevel = 'warn'): Promise<Demo> {
  const child = spawn(process.execPath, [launcher], {
    env: {
      ...process.env,
      REGISTRY_PORT: '0',
      GATEWAY_PORT: '0',
      TRELLIS_DATA_DIR: dataDir,
      TRELLIS_LOG_LEVEL: logLevel,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, as a shell gives it: a Ctrl-C or a closed terminal signals the group.
    detached: true,
  });
  started.push(child.pid!);
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  const ports: number[] = [];
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      // "  gateway   http://127.0.0.1:8080/": the URLs to open.
      const url = /^\s+\S+\s+(http:\/\/\S+)$/.exec(line)?.[1];
      if (url !== undefined) ports.push(Number(new URL(url).port));
      if (until.test(line)) resolve();
    });
    void exited.then((code) => reject(new Error(`the demo exited (${code}) before it printed ${until}`)));
  });
  const children = childrenOf(child.pid!);
  started.push(...children);
  return { process: child, exited, children, ports: [...new Set(ports)] };
}

async function busyPorts(ports: readonly number[]): Promise<number[]> {
  const free = await Promise.all(ports.map(portIsFree));
  return ports.filter((_, i) => !free[i]);
}

describe('the demo launcher', () => {
  it.each([
    { way: 'Ctrl-C (SIGINT to its process group)', signal: 'SIGINT', group: true, logLevel: 'warn' },
    // At info, the services' JSON logs also say "listening on": the URLs must come from the ready lines.
    { way: 'SIGTERM', signal: 'SIGTERM', group: false, logLevel: 'info' },
    { way: 'its terminal closing (SIGHUP to its process group)', signal: 'SIGHUP', group: true, logLevel: 'warn' },
  ] as const)(
    'on $way stops every service, exits 0 and leaves its ports free',
    async ({ signal, group, logLevel }) => {
      const demo = await startDemo(/^Press Ctrl-C/, logLevel);
      expect(demo.children).toHaveLength(processes);
      // The URLs printed: the gateway's, the registry's and the forum's.
      expect(demo.ports).toHaveLength(3);
      process.kill(group ? -demo.process.pid! : demo.process.pid!, signal);
      expect(await demo.exited).toBe(0);
      // The launcher waits for each service's exit before its own.
      expect(demo.children.filter(alive)).toEqual([]);
      expect(await busyPorts(demo.ports)).toEqual([]);
    },
    40_000,
  );

  it('takes every service down with it, ports freed, when it is killed with -9', async () => {
    const demo = await startDemo(/^Press Ctrl-C/);
    expect(demo.children).toHaveLength(processes);
    demo.process.kill('SIGKILL');
    await demo.exited;
    expect(await waitUntilGone(demo.children, 10_000)).toEqual([]);
    expect(await busyPorts(demo.ports)).toEqual([]);
  }, 40_000);

  it('takes the services down with it when it is killed with -9 while they are still starting', async () => {
    // The services' info lines are relayed, labelled. A users instance's first one (its JSON
    // "listening on", before it registers) comes once the registry serves and while both users
    // instances start: before "Everything is up", which waits for the gateway, started last.
    const demo = await startDemo(/^\[users-\d\] /, 'info');
    // The registry and the users and mail instances, perhaps more.
    expect(demo.children.length).toBeGreaterThanOrEqual(5);
    demo.process.kill('SIGKILL');
    await demo.exited;
    expect(await waitUntilGone(demo.children, 10_000)).toEqual([]);
  }, 40_000);
});
