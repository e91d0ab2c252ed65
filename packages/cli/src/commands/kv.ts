import type { KvEntry } from '@trellis/config';
import type { Context } from '../context.js';
import { OperationError } from '../failure.js';
import { readInput } from '../io.js';

/** `trellis kv get <key> [--recurse]`: a value as it is stored, or every `key:value` under a prefix. */
export async function kvGet(context: Context, key: string, options: { recurse?: boolean }): Promise<void> {
  const kv = context.kv();
  if (options.recurse === true) {
    const entries = await kv.list(key);
    if (entries.length === 0)
      throw new OperationError(`no key under "${key}" in the KV at ${context.globals.registry}`);
    if (context.json) return context.outJson(entries.map(entryJson));
    // Consul's own `kv get -recurse` format.
    return context.out(entries.map((entry) => `${entry.key}:${withNewline(entry.value)}`).join(''));
  }
  const entry = await kv.get(key);
  if (entry === undefined) {
    throw new OperationError(
      `no key "${key}" in the KV at ${context.globals.registry} (\`trellis kv get --recurse ${key}\` lists a prefix)`,
    );
  }
  if (context.json) return context.outJson(entryJson(entry));
  context.out(withNewline(entry.value));
}

/** `trellis kv put <key> [value] [--cas <index>]`: writes the value, or standard input when it is left out. */
export async function kvPut(
  context: Context,
  key: string,
  value: string | undefined,
  options: { cas?: number },
): Promise<void> {
  const text = value ?? (await readInput(undefined, context.io.stdin, 'the value'));
  const written = await context.kv().put(key, text, options.cas === undefined ? {} : { cas: options.cas });
  if (!written) {
    throw new OperationError(
      `"${key}" was not written: its modify index is no longer ${options.cas} (someone changed it); read it again with \`trellis kv get --json ${key}\``,
    );
  }
  if (context.json) return context.outJson({ key, written: true, bytes: Buffer.byteLength(text) });
  context.out(`wrote ${key} (${Buffer.byteLength(text)} bytes)\n`);
}

/** `trellis kv delete <key> [--recurse]`: deletes the key, or every key under the prefix. */
export async function kvDelete(context: Context, key: string, options: { recurse?: boolean }): Promise<void> {
  await context.kv().delete(key, options.recurse === true ? { recurse: true } : {});
  if (context.json) return context.outJson({ key, recurse: options.recurse === true, deleted: true });
  context.out(options.recurse === true ? `deleted every key under ${key}\n` : `deleted ${key}\n`);
}

function entryJson(entry: KvEntry): Record<string, unknown> {
  return {
    key: entry.key,
    value: entry.value,
    modifyIndex: entry.modifyIndex,
    createIndex: entry.createIndex,
    ...(entry.session === undefined ? {} : { session: entry.session }),
  };
}

// A value is printed as stored, ended by one newline (not a second one when it has its own).
function withNewline(value: string): string {
  return value.endsWith('\n') ? value : `${value}\n`;
}
