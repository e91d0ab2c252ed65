import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { run } from '@trellis/cli';
import { RegistryServer, type RegistryServerOptions } from '@trellis/registry-server';

/** What one `trellis` command printed, and its exit code. */
export interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const started: RegistryServer[] = [];

/** A quiet registry server on a free port of 127.0.0.1; {@link closeAll} (in an afterEach) stops it. */
export async function startRegistry(
  options: RegistryServerOptions = {},
): Promise<{ server: RegistryServer; url: string }> {
  const server = new RegistryServer({ logLevel: 'silent', nodeName: 'trellis', ...options });
  started.push(server);
  const { url } = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, url };
}

export async function closeAll(): Promise<void> {
  await Promise.all(started.splice(0).map((server) => server.close()));
}

/**
 * Runs `trellis <args>` in this process, with `stdin` as standard input (none: a terminal, as
 * when nothing is piped) and only `env` as the environment.
 */
export async function trellis(
  args: readonly string[],
  options: { stdin?: string; env?: Record<string, string> } = {},
): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const stdin =
    options.stdin === undefined
      ? Object.assign(Readable.from([]), { isTTY: true })
      : Readable.from([Buffer.from(options.stdin)]);
  const code = await run(args, {
    stdin,
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    env: options.env ?? {},
  });
  return { code, stdout, stderr };
}

// The bin as npm links it; it runs the built CLI (`npm test` builds first).
export const bin = fileURLToPath(new URL('../bin/trellis.js', import.meta.url));

/** Runs the built bin as a child process, with only `env` (and PATH) as its environment; killed after `timeoutMs`. */
export function trellisProcess(
  args: readonly string[],
  options: { stdin?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Result> {
  const child = spawn(process.execPath, [bin, ...args], {
    env: { PATH: process.env['PATH'] ?? '', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.end(options.stdin ?? '');
  const guard = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(guard);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The lines of a text, without the empty last one. */
export function lines(text: string): string[] {
  return text.split('\n').filter((line, i, all) => line !== '' || i < all.length - 1);
}
