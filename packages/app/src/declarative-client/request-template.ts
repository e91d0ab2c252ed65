import { ConfigError } from '@trellis/core';
import type { ParameterBinding } from '../decorators/metadata.js';

/** Makes the path (with its query string) of one call from the method's arguments. */
export type PathBuilder = (args: readonly unknown[]) => string;

/**
 * Compiles a route path such as `/users/:id/posts` with the method's `@Param` and `@Query`
 * parameters into a function of the arguments, once per method: each `:name` is filled from the
 * `@Param('name')` argument (or the `@Param()` object), URL-encoded; query parameters that are
 * undefined are left out, arrays repeat the key.
 *
 * @throws ConfigError naming the method when a `:name` has no parameter, or a named parameter no `:name`.
 */
export function compilePath(where: string, path: string, parameters: readonly ParameterBinding[]): PathBuilder {
  const named = new Map<string, number>();
  let whole: number | undefined;
  for (const p of parameters) {
    if (p.source !== 'param') continue;
    if (p.name === undefined) whole = p.index;
    else named.set(p.name, p.index);
  }
  // Literal text and parameter slots, alternating: ['/users/', 'id', '/posts'].
  const parts = path.split(/:([A-Za-z_][A-Za-z0-9_]*)/);
  const slots: Array<{ readonly name: string; readonly index: number | undefined }> = [];
  for (let i = 1; i < parts.length; i += 2) {
    const name = parts[i] as string;
    const index = named.get(name);
    if (index === undefined && whole === undefined) {
      throw new ConfigError(where, `path "${path}" has ":${name}" but no @Param('${name}') parameter`);
    }
    slots.push({ name, index });
  }
  for (const name of named.keys()) {
    if (!slots.some((s) => s.name === name)) {
      throw new ConfigError(where, `@Param('${name}') has no ":${name}" in path "${path}"`);
    }
  }
  const queries = parameters.filter((p) => p.source === 'query');

  return (args) => {
    let out = parts[0] as string;
    for (let s = 0; s < slots.length; s++) {
      const slot = slots[s] as { name: string; index: number | undefined };
      const value =
        slot.index === undefined
          ? (args[whole as number] as Record<string, unknown> | undefined)?.[slot.name]
          : args[slot.index];
      if (value === undefined || value === null || value === '') {
        throw new ConfigError(`${where}(${slot.name})`, 'a path parameter needs a value, got ' + String(value));
      }
      out += encodeURIComponent(scalar(`${where}(${slot.name})`, value)) + (parts[2 * s + 2] as string);
    }
    if (queries.length === 0) return out;
    const search = new URLSearchParams();
    for (const q of queries) {
      const value = args[q.index];
      if (q.name !== undefined) append(where, search, q.name, value);
      else if (value !== undefined && value !== null) {
        for (const [key, v] of Object.entries(value as Record<string, unknown>)) append(where, search, key, v);
      }
    }
    const text = search.toString();
    return text === '' ? out : `${out}?${text}`;
  };
}

function append(where: string, search: URLSearchParams, key: string, value: unknown): void {
  if (value === undefined || value === null) return;
  if (Array.isArray(value)) for (const v of value as unknown[]) append(where, search, key, v);
  else search.append(key, scalar(`${where}(${key})`, value));
}

/** The text of a value sent in a path, query or header: a string, number, boolean or date. */
export function scalar(field: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value instanceof Date) return value.toISOString();
  throw new ConfigError(field, `must be a string, number, boolean or Date, got ${typeof value}`);
}
