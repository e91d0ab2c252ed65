import type { Call } from '@trellis/core';

/** Takes the key a call is hashed by; undefined when the call has none. */
export type HashKey = (call: Call) => string | undefined;

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
 * Ready-made keys for {@link ConsistentHash}.
 *
 * @example
 * new ConsistentHash({ key: hashKeys.header('x-tenant') });
 * new ConsistentHash({ key: hashKeys.pathSegment(1) }); // "/users/42/posts" → "42"
 */
export const hashKeys = {
  /** The value of a request header, e.g. a tenant or session id. */
  header(name: string): HashKey {
    const lower = name.toLowerCase();
    return (call) => headerValue(call.headers, lower);
  },
  /** The calling user, as named by a header the caller sets (default "x-user-id"). */
  user(header = 'x-user-id'): HashKey {
    return hashKeys.header(header);
  },
  /** The path without its query: each resource sticks to one instance (cache affinity). */
  path(): HashKey {
    return pathOf;
  },
  /**
   * The `index`-th segment of the path, from 0: for "/users/42/posts", 0 is "users" and 1 is
   * "42". Undefined when the path is shorter.
   */
  pathSegment(index: number): HashKey {
    return (call) => {
      const segment = pathOf(call).split('/')[index + 1];
      return segment === undefined || segment === '' ? undefined : segment;
    };
  },
  /** The value of a query parameter, e.g. `?shard=7`. */
  query(name: string): HashKey {
    return (call) => {
      const q = call.path.indexOf('?');
      return q < 0 ? undefined : (new URLSearchParams(call.path.slice(q + 1)).get(name) ?? undefined);
    };
  },
} as const;
