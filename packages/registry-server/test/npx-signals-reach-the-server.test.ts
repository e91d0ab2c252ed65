import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from '@jest/globals';
import { listeningUrl } from './cli-process.js';
import { alive, descendantsOf, portIsFree } from './process-tree.js';

// `npx trellis-registry` as a user runs it at the repository root: through the linked bin, npm
// and its `sh -c`. Needs the built package (`npm test` builds first).
const root = fileURLToPath(new URL('../../..', import.meta.url));

// What each test started, for the afterEach: npm, and once known its shell and the server (which
// a failing test may leave orphaned, outside npm's tree).
const started: { readonly pids: number[]; readonly dataDir: string }[] = [];

afterEach(() => {
  for (const { pids, dataDir } of started.splice(0)) {
    for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  }
});

/** Resolves when `promise` does, or rejects naming `what` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

const ways = [
  // A service manager, `timeout`, or `kill <pid>`: the signal reaches npm only.
  { way: 'SIGTERM to the npx process', signal: 'SIGTERM', group: false },
  // A terminal's Ctrl-C signals the foreground process group: npm, its shell and the server.
  // (A SIGINT to npm alone never reaches the server: npm passes it to its `sh -c`, and dash
  // acts on it only once its child has exited.)
  { way: 'Ctrl-C (SIGINT to its process group)', signal: 'SIGINT', group: true },
] as const;

describe('npx trellis-registry', () => {
  it.each(ways)(
    'serves, and on $way the server closes (data dir unlocked) and frees its port',
    async ({ signal, group }) => {
      const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-npx-'));
      // `--no`: fail instead of asking the npm registry when the bin is not linked.
      const npx = spawn('npx', ['trellis-registry', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn'], {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
        // Its own process group, as a shell gives a command it runs, so that a Ctrl-C can be
        // sent to it and not to Jest.
        detached: true,
        // Fail rather than ask the npm registry for the package when the bin is not linked.
        env: { ...process.env, npm_config_yes: 'false' },
      });
      const pids = [npx.pid!];
      started.push({ pids, dataDir });
      // Fires once npm has exited and the last holder of its stdout and stderr, the server, too.
      const closed = once(npx, 'close');

      const url = await listeningUrl(npx);
      npx.stdout?.resume();
      const port = Number(new URL(url).port);
      const response = await fetch(`${url}/v1/status/leader`);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatch(/^127\.0\.0\.1:\d+$/);
      const servers = descendantsOf(npx.pid!).filter((pid) => descendantsOf(pid).length === 0);
      expect(servers).toHaveLength(1);
      pids.push(...descendantsOf(npx.pid!));
      expect(existsSync(path.join(dataDir, 'LOCK'))).toBe(true);

      process.kill(group ? -npx.pid! : npx.pid!, signal);
      await within(closed, 5_000, 'the server did not exit');
      expect(servers.filter(alive)).toEqual([]);
      expect(await portIsFree(port)).toBe(true);
      // The lock goes in close(): the server stopped gracefully, it was not killed.
      expect(existsSync(path.join(dataDir, 'LOCK'))).toBe(false);
    },
    30_000,
  );
});
