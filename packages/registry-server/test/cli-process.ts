import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

// The built bin: `npx tsc -b packages/registry-server` (or `npm test`, which builds) first.
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const children: ChildProcess[] = [];

/** Starts `trellis-registry` with `args`; {@link killCliChildren} (in an afterEach) ends it. */
export function spawnCli(args: readonly string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  children.push(child);
  return child;
}

/** Settles with the exit code (or signal name) of the child. */
export function exited(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve(child.exitCode ?? child.signalCode ?? '');
  }
  return once(child, 'exit').then(([code, signal]) => (code as number | null) ?? (signal as string));
}

/** Everything the child writes to stderr, once it has exited. Call it right after spawning. */
export function stderrOf(child: ChildProcess): Promise<string> {
  let text = '';
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return exited(child).then(() => text);
}

/** The first stdout line, or a rejection with stderr when the child exits before printing one. */
export async function firstLine(child: ChildProcess): Promise<string> {
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

/** The URL the CLI prints once it listens. */
export async function listeningUrl(child: ChildProcess): Promise<string> {
  const url = /listening on (\S+)$/.exec(await firstLine(child))?.[1];
  if (url === undefined) throw new Error('the CLI printed no URL');
  return url;
}

/** Kills every CLI child still running; for an afterEach. */
export async function killCliChildren(): Promise<void> {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited(child);
    }
  }
}
