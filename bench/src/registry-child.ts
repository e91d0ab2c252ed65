import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** What the registry server process reports about itself. */
export interface ServerStats {
  /** Resident set size of the whole process. */
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** Blocking queries the server holds now (`RegistryServer.heldQueries`). */
  readonly heldQueries: number;
  /** Bytes of the server's answer cache (`RegistryServer.stats().answerCacheBytes`). */
  readonly answerCacheBytes: number;
  /** The longest the server's event loop was held since the previous stats, in ms (10 ms resolution). */
  readonly loopDelayMaxMs: number;
}

/** Messages from the parent to the server process. */
export type ToServer = { readonly type: 'stats'; readonly id: number; readonly gc: boolean };

/** Messages from the server process to the parent. */
export type ToParent =
  | { readonly type: 'listening'; readonly port: number }
  | { readonly type: 'stats'; readonly id: number; readonly stats: ServerStats };

/** A registry server running in a child process, and how to ask it about itself. */
export interface RegistryChild {
  /** The server's base URL on 127.0.0.1. */
  readonly url: string;
  readonly port: number;
  /**
   * The server process's memory and held queries; with `gc`, after a full collection.
   * @throws Error when the process does not answer within 10 s or has exited.
   */
  stats(gc?: boolean): Promise<ServerStats>;
  /**
   * Polls {@link stats} until `heldQueries` reaches `count`.
   * @throws Error when it has not within `timeoutMs`.
   */
  waitForHeldQueries(count: number, timeoutMs: number): Promise<void>;
  /** Disconnects; the server process closes and exits. */
  close(): Promise<void>;
}

/**
 * Forks `registry-server-process.js` (a `RegistryServer` with silent logs on a free port of
 * 127.0.0.1, with the parent's node flags plus `--expose-gc`) and resolves once it listens.
 * @throws Error when the process exits before listening.
 * @example
 * const child = await startRegistryChild();
 * await fetch(`${child.url}/v1/health/service/web`);
 * console.log((await child.stats(true)).rssBytes);
 * await child.close();
 */
export async function startRegistryChild(): Promise<RegistryChild> {
  const child = fork(fileURLToPath(new URL('./registry-server-process.js', import.meta.url)), {
    // The parent's flags pass on, so that `node --cpu-prof bench/dist/run.js registry` profiles the server too.
    execArgv: [...process.execArgv, '--expose-gc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the registry server exited (${code}) before listening`)));
    child.once('message', (m: ToParent) => {
      if (m.type === 'listening') resolve(m.port);
    });
  });
  let nextId = 0;
  const stats = (gc = false): Promise<ServerStats> => request(child, nextId++, gc);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stats,
    async waitForHeldQueries(count, timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      let held = 0;
      // Bounded by the deadline; each round trip takes a few milliseconds.
      while (performance.now() < deadline) {
        held = (await stats()).heldQueries;
        if (held >= count) return;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      throw new Error(`the server holds ${held} blocking queries after ${timeoutMs} ms, not ${count}`);
    },
    close() {
      if (child.exitCode !== null || !child.connected) return Promise.resolve();
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.disconnect();
      return exited;
    },
  };
}

function request(child: ChildProcess, id: number, gc: boolean): Promise<ServerStats> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: ToParent): void => {
      if (m.type !== 'stats' || m.id !== id) return;
      done();
      resolve(m.stats);
    };
    const onExit = (): void => {
      done();
      reject(new Error('the registry server exited'));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error('the registry server did not report its stats within 10 s'));
    }, 10_000);
    const done = (): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
    const message: ToServer = { type: 'stats', id, gc };
    child.send(message);
  });
}
