import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** Debian's Prometheus, which .ci/run installs. */
export const prometheusBinary = '/usr/bin/prometheus';

/** A real Prometheus on 127.0.0.1, its data in a temporary folder. */
export interface RunningPrometheus {
  readonly url: string;
  /** An instant query through the HTTP API: the result vector. */
  query(promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  /** The active targets, as `/api/v1/targets` lists them. */
  targets(): Promise<Array<{ labels: Record<string, string>; health: string; lastError: string; scrapeUrl: string }>>;
  /** SIGTERM, waits for the exit, removes the data. */
  stop(): Promise<void>;
}

/**
 * Starts Prometheus with `config` (YAML) on a port of its choosing, and resolves once it serves
 * web requests (it logs the address it bound). Fails with the reason when the binary is missing.
 */
export async function startPrometheus(config: string): Promise<RunningPrometheus> {
  if (!existsSync(prometheusBinary)) {
    throw new Error(`${prometheusBinary} not found: install Debian's prometheus package (.ci/run does)`);
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-prometheus-'));
  await writeFile(path.join(dir, 'prometheus.yml'), config);
  const child = spawn(
    prometheusBinary,
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      '--web.listen-address=127.0.0.1:0',
      '--log.level=info',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let url: string;
  try {
    url = await listeningUrl(child);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const api = async <T>(pathAndQuery: string): Promise<T> => {
    const response = await fetch(`${url}${pathAndQuery}`);
    const body = (await response.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`Prometheus ${pathAndQuery}: ${body.error ?? response.status}`);
    return body.data;
  };
  return {
    url,
    query: async (promql) =>
      (
        await api<{ result: Array<{ metric: Record<string, string>; value: [number, string] }> }>(
          `/api/v1/query?query=${encodeURIComponent(promql)}`,
        )
      ).result,
    targets: async () =>
      (
        await api<{
          activeTargets: Array<{
            labels: Record<string, string>;
            health: string;
            lastError: string;
            scrapeUrl: string;
          }>;
        }>('/api/v1/targets?state=active')
      ).activeTargets,
    stop: async () => {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// Prometheus logs `msg="Listening on" address=127.0.0.1:PORT` once the port is bound, and
// `Server is ready to receive web requests.` once it answers; both come before any scrape.
function listeningUrl(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let log = '';
    let address: string | undefined;
    const timer = setTimeout(
      () => fail(new Error(`Prometheus did not start within 30 s:\n${log.slice(-2000)}`)),
      30_000,
    );
    const fail = (error: Error): void => {
      clearTimeout(timer);
      child.stderr?.removeAllListeners('data');
      reject(error);
    };
    const onExit = (code: number | null): void =>
      fail(new Error(`Prometheus exited with ${code}:\n${log.slice(-2000)}`));
    child.once('exit', onExit);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      // Keep the tail only: Prometheus keeps logging while it runs.
      log = (log + chunk).slice(-20_000);
      address ??= /msg="Listening on" address=(\S+)/.exec(log)?.[1];
      if (address !== undefined && log.includes('Server is ready to receive web requests')) {
        clearTimeout(timer);
        child.removeListener('exit', onExit);
        child.stderr?.removeAllListeners('data');
        // Keep draining stderr so that Prometheus never blocks on a full pipe.
        child.stderr?.resume();
        resolve(`http://${address}`);
      }
    });
  });
}

/**
 * Asks `probe` until it returns a value, at most `attempts` times `intervalMs` apart: Prometheus
 * discovers and scrapes on its own intervals, which are the events waited for here.
 */
export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  what: string,
  { attempts = 150, intervalMs = 200 } = {},
): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}
