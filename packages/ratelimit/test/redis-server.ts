import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pauseProcess } from '../../registry-server/test/process-tree.js';

/** Debian's redis-server, which .ci/run installs. */
export const redisBinary = '/usr/bin/redis-server';

/** A real redis-server on 127.0.0.1, without persistence, its working folder temporary. */
export interface RunningRedis {
  readonly port: number;
  readonly url: string;
  /** SIGKILL, as a crash would; resolves once it exited. */
  kill(): Promise<void>;
  /** Starts it again on the same port (after kill); resolves once it accepts connections. */
  restart(): Promise<void>;
  /**
   * SIGSTOP (resolving once it is stopped) / SIGCONT: a Redis that takes connections and never
   * answers, then answers again.
   */
  pause(): Promise<void>;
  resume(): void;
  /** Kills it if running and removes its folder. */
  stop(): Promise<void>;
}

/** A port free now (Redis takes no port 0: it means "no TCP" to it). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function launch(dir: string, port: number): Promise<{ child: ChildProcess; exited: Promise<void> }> {
  const child = spawn(
    redisBinary,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--daemonize',
      'no',
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lines: string[] = [];
  const ready = await new Promise<boolean>((resolve) => {
    const guard = setTimeout(() => resolve(false), 10_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (lines.length < 50) lines.push(line);
      if (line.includes('Ready to accept connections')) {
        clearTimeout(guard);
        resolve(true);
      }
    });
    void exited.then(() => {
      clearTimeout(guard);
      resolve(false);
    });
  });
  if (!ready) {
    child.kill('SIGKILL');
    await exited;
    throw new Error(`redis-server did not start on 127.0.0.1:${port}:\n${lines.join('\n')}`);
  }
  return { child, exited };
}

/**
 * Starts redis-server on a free port and resolves once it accepts connections. Fails with the
 * reason when the binary is missing.
 */
export async function startRedis(): Promise<RunningRedis> {
  if (!existsSync(redisBinary)) {
    throw new Error(`${redisBinary} not found: install Debian's redis-server package (.ci/run does)`);
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-redis-'));
  let port = 0;
  let running: { child: ChildProcess; exited: Promise<void> } | undefined;
  // Another process may take the free port before Redis binds it: try a few.
  for (let attempt = 0; running === undefined; attempt++) {
    port = await freePort();
    try {
      running = await launch(dir, port);
    } catch (error) {
      if (attempt >= 2) {
        await rm(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
  const kill = async (): Promise<void> => {
    const current = running;
    running = undefined;
    if (current === undefined) return;
    current.child.kill('SIGCONT');
    current.child.kill('SIGKILL');
    await current.exited;
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: async () => {
      if (running !== undefined) throw new Error('redis-server is running');
      running = await launch(dir, port);
    },
    pause: async () => {
      if (running?.child.pid !== undefined) await pauseProcess(running.child.pid);
    },
    resume: () => running?.child.kill('SIGCONT'),
    stop: async () => {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
