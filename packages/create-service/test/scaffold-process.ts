import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// The bin as npm links it; it runs the built CLI (`npm test` builds first).
export const bin = fileURLToPath(new URL('../bin/create-service.js', import.meta.url));

/** What a process printed, and how it ended. */
export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `node <args>` in `cwd` until it exits; killed after `timeoutMs`, which the caller sees
 * as a null code. The runner's settings (TRELLIS_*, NODE_OPTIONS) do not leak into it.
 */
export function run(args: readonly string[], cwd: string, timeoutMs = 30_000): Promise<Run> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(TRELLIS_|PORT$|HOST$|OTEL_|NODE_OPTIONS$)/.test(name)),
  );
  const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const guard = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  // 'close' comes after both streams have ended, so that nothing printed is missed.
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(guard);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * A fresh folder inside the repository (so that `@trellis/*` resolve through its node_modules
 * to the built workspace packages), removed by the returned function.
 */
export function outputFolder(): { readonly dir: string; readonly remove: () => void } {
  const parent = fileURLToPath(new URL('../.test-output/', import.meta.url));
  mkdirSync(parent, { recursive: true });
  const dir = mkdtempSync(path.join(parent, 'run-'));
  return {
    dir,
    remove: () => {
      rmSync(dir, { recursive: true, force: true });
      // The parent goes once empty; another test file may still be using it.
      try {
        rmdirSync(parent);
      } catch {
        // not empty
      }
    },
  };
}
