import { ConfigError, type Call } from '@trellis/core';
import { PerKey } from './per-key.js';

/** Which limiter a call counts against: one for all, or one per key of the call. */
export type LimiterChoice<L extends { readonly idle: boolean }> =
  | L
  | {
      readonly perKey: PerKey<L>;
      /** The key of a call, e.g. `(call) => call.headers['x-user-id'] ?? 'anonymous'`. */
      readonly key: (call: Call) => string;
    };

/** A limiter picked for one call, and the key it was picked by. */
export interface Chosen<L> {
  readonly limiter: L;
  readonly key: string | undefined;
}

/**
 * The function that picks a call's limiter; for a single limiter it returns one shared object.
 * @throws ConfigError when `perKey` comes without `key`.
 */
export function chooser<L extends { readonly idle: boolean }>(
  choice: LimiterChoice<L>,
): (call: Call | undefined) => Chosen<L> {
  if (typeof choice === 'object' && 'perKey' in choice) {
    const { perKey, key } = choice;
    if (!(perKey instanceof PerKey)) throw new ConfigError('perKey', 'must be a PerKey');
    if (typeof key !== 'function') throw new ConfigError('key', 'must be a function of the call when perKey is given');
    return (call) => {
      if (call === undefined)
        throw new ConfigError('perKey', 'execute() has no call to take a key from: give one limiter');
      const k = key(call);
      return { limiter: perKey.get(k), key: k };
    };
  }
  const fixed: Chosen<L> = { limiter: choice, key: undefined };
  return () => fixed;
}

/** How a limit is named in errors: `"users"`, or `"users" for key "forum"`. */
export function scopeOf(name: string, key: string | undefined): string {
  return key === undefined ? `"${name}"` : `"${name}" for key "${key}"`;
}
