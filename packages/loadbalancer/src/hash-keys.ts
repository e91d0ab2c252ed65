import { ConfigError, type Call } from '@trellis/core';

/**
 * The value of header `name` in `headers`, whatever the case of its name there. A direct
 * lookup first: callers mostly write header names in lower case, and then nothing is scanned.
 */
export function headerValue(headers: Readonly<Record<string, string>>, lowerName: string): string | undefined {
  const direct = headers[lowerName];
  if (direct !== undefined) return direct;
  for (const name in headers) {
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) return headers[name];
  }
  return undefined;
}

/** The path of a call without its query string. */
export function pathOf(call: Call): string {
  const q = call.path.indexOf('?');
  return q < 0 ? call.path : call.path.slice(0, q);
}

/**
 * What {@link ConsistentHash} hashes a call by, as data so that configuration can name it:
 * `'path'` (the path without its query: each resource sticks to one instance), `{ header }`
 * (a tenant, a session, the user as `{ header: 'x-user-id' }`; case does not matter),
 * `{ pathSegment }` (the `i`-th segment from 0: for "/users/42/posts", 0 is "users" and 1 is
 * "42"), `{ query }` (a query parameter, e.g. `?shard=7`), or any function of the call.
 * A call without the key (no such header, a shorter path) has none.
 *
 * @example
 * new ConsistentHash({ key: { header: 'x-tenant' } });
 * new ConsistentHash({ key: { pathSegment: 1 } }); // "/users/42/posts" → "42"
 */
export type HashKey =
  'path' | { readonly header: string } | { readonly pathSegment: number } | { readonly query: string } | KeyFunction;

/** Takes the key a call is hashed by; undefined when the call has none. */
export type KeyFunction = (call: Call) => string | undefined;

/** The key functions behind {@link HashKey}'s forms. */
export const hashKeys = {
  header(name: string): KeyFunction {
    const lower = name.toLowerCase();
    return (call) => headerValue(call.headers, lower);
  },
  path(): KeyFunction {
    return pathOf;
  },
  pathSegment(index: number): KeyFunction {
    return (call) => {
      const segment = pathOf(call).split('/')[index + 1];
      return segment === undefined || segment === '' ? undefined : segment;
    };
  },
  query(name: string): KeyFunction {
    return (call) => {
      const q = call.path.indexOf('?');
      return q < 0 ? undefined : (new URLSearchParams(call.path.slice(q + 1)).get(name) ?? undefined);
    };
  },
} as const;

/**
 * The function of a {@link HashKey}.
 * @throws ConfigError naming `field` (e.g. "key.header") for a key of none of the forms.
 */
export function keyFunction(key: HashKey, field = 'key'): KeyFunction {
  if (typeof key === 'function') return key;
  if (key === 'path') return hashKeys.path();
  const given: unknown = key;
  if (typeof given === 'object' && given !== null && !Array.isArray(given)) {
    const keys = Object.keys(given);
    const spec = given as Record<string, unknown>;
    if (keys.length === 1) {
      const name = keys[0] as string;
      const value = spec[name];
      if (name === 'header' || name === 'query') {
        if (typeof value !== 'string' || value === '')
          throw new ConfigError(`${field}.${name}`, 'must be a non-empty string');
        return name === 'header' ? hashKeys.header(value) : hashKeys.query(value);
      }
      if (name === 'pathSegment') {
        if (!Number.isInteger(value) || (value as number) < 0) {
          throw new ConfigError(`${field}.pathSegment`, 'must be an integer >= 0');
        }
        return hashKeys.pathSegment(value as number);
      }
    }
  }
  throw new ConfigError(field, "must be 'path', { header }, { pathSegment }, { query } or a function of the call");
}
