import { readFile } from 'node:fs/promises';
import { UsageError } from './failure.js';

/** Somewhere `run` writes text: process.stdout, or a test's collector. */
export interface Output {
  write(text: string): unknown;
}

/** Standard input: process.stdin, or a test's stream or text. */
export type Input = string | (AsyncIterable<string | Uint8Array> & { readonly isTTY?: boolean });

/** What {@link run} reads and writes instead of the process's own streams, so that it runs in-process in tests. */
export interface RunIo {
  readonly stdout: Output;
  readonly stderr: Output;
  /** Read when a command takes its input from standard input; default none (as if empty). */
  readonly stdin?: Input;
  /** The environment (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, USER); default none. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/**
 * The text of `--file <path>` (`-` is standard input), else of standard input when it is not a
 * terminal. `what` names the input in the refusals ("the rules").
 *
 * @throws UsageError when the file cannot be read, or neither is given.
 */
export async function readInput(file: string | undefined, stdin: Input | undefined, what: string): Promise<string> {
  if (file !== undefined && file !== '-') {
    try {
      return await readFile(file, 'utf8');
    } catch (error) {
      throw new UsageError(`--file "${file}" cannot be read: ${(error as Error).message}`);
    }
  }
  if (stdin === undefined || (typeof stdin !== 'string' && stdin.isTTY === true)) {
    throw new UsageError(`give ${what} with --file <path>, or on standard input`);
  }
  if (typeof stdin === 'string') return stdin;
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of stdin) text += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
  return text + decoder.decode();
}

/** Parses a JSON document given by the user; `source` names it, in the plural ("the rules in standard input"). @throws UsageError when it is not JSON. */
export function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new UsageError(`${source} are not JSON: ${(error as Error).message}`);
  }
}

/** Where `--file` input came from, for messages: the path, or standard input. */
export function sourceName(file: string | undefined): string {
  return file === undefined || file === '-' ? 'standard input' : `--file "${file}"`;
}
