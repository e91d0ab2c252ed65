import { ConfigError, Emitter, type Call, type Event, type Filter, type Reply } from '@trellis/core';
import type { ConcurrencyLimit } from '../bulkhead/concurrency-limit.js';
import { BulkheadFullError } from '../bulkhead/bulkhead-full-error.js';
import { RateLimitedError } from './rate-limited-error.js';
import { PerKey } from '../shared/per-key.js';
import type { RateLimiter } from './rate-limiter.js';

/** Which limiter a call counts against: one for all, or one per key of the call. */
export type LimiterChoice<L extends { readonly idle: boolean }, C> =
  | L
  | {
      readonly perKey: PerKey<L>;
      /** The key of a call, e.g. `(call) => call.headers['x-user-id'] ?? 'anonymous'`. */
      readonly key: (call: C) => string;
    };

/** A limit filter, with an event for metrics and logs. */
export interface LimitFilter<C, R, E> extends Filter<C, R> {
  /** A call was refused (emitted before the caller sees the error). */
  readonly onRejected: Event<E>;
}

export interface LimitFilterOptions {
  /** Names the limit in errors; default the call's service. */
  readonly name?: string;
}

/**
 * An outbound filter that refuses calls beyond a rate with {@link RateLimitedError} (code
 * `RATE_LIMITED`, with `retryAfterMs`), before they cost anything downstream. Works for whole
 * calls (`Filter<Call, Reply>`) and for attempts (`Filter<Attempt, Reply>`).
 *
 * @throws ConfigError when `perKey` comes without `key`.
 * @example
 * const client = new ServiceClient({
 *   service: 'mail', discovery,
 *   filters: [rateLimit(new TokenBucket({ ratePerSecond: 50, burst: 10 }))],
 * });
 */
export function rateLimit<C extends Call = Call, R = Reply>(
  limiter: LimiterChoice<RateLimiter, C>,
  options: LimitFilterOptions = {},
): LimitFilter<C, R, RateLimitedError> {
  const pick = chooser(limiter);
  const rejected = new Emitter<RateLimitedError>();
  const filter: Filter<C, R> = (call, next) => {
    const chosen = pick(call);
    const decision = chosen.limiter.tryAcquire();
    if (decision.granted) return next(call);
    const error = new RateLimitedError(
      scopeOf(options.name ?? call.service, chosen.key),
      decision.retryAfterMs,
      call.service,
    );
    rejected.emit(error);
    return Promise.reject(error);
  };
  return Object.assign(filter, { onRejected: rejected.event });
}

/**
 * An outbound filter that bounds the calls in flight with a {@link ConcurrencyLimit}: a call
 * waits in its queue for a slot, or is refused with `BulkheadFullError` (code `BULKHEAD_FULL`).
 * The slot is released when the call settles, whichever way.
 *
 * @throws ConfigError when `perKey` comes without `key`.
 * @example
 * filters: [bulkhead(new ConcurrencyLimit({ maxConcurrent: 20, maxQueue: 100, queueTimeoutMs: 250 }))]
 */
export function bulkhead<C extends Call = Call, R = Reply>(
  limit: LimiterChoice<ConcurrencyLimit, C>,
): LimitFilter<C, R, BulkheadFullError> {
  const pick = chooser(limit);
  const rejected = new Emitter<BulkheadFullError>();
  const filter: Filter<C, R> = async (call, next) => {
    const { limiter } = pick(call);
    if (!limiter.tryAcquire()) {
      try {
        // Read the call's signal only when the call has to queue: an unread signal costs nothing.
        await limiter.acquire(call.signal);
      } catch (error) {
        if (BulkheadFullError.is(error)) rejected.emit(error);
        throw error;
      }
    }
    try {
      return await next(call);
    } finally {
      limiter.release();
    }
  };
  return Object.assign(filter, { onRejected: rejected.event });
}

interface Chosen<L> {
  readonly limiter: L;
  readonly key: string | undefined;
}

function chooser<L extends { readonly idle: boolean }, C>(choice: LimiterChoice<L, C>): (call: C) => Chosen<L> {
  if (typeof choice === 'object' && 'perKey' in choice) {
    const { perKey, key } = choice;
    if (!(perKey instanceof PerKey)) throw new ConfigError('perKey', 'must be a PerKey');
    if (typeof key !== 'function') throw new ConfigError('key', 'must be a function of the call when perKey is given');
    return (call) => {
      const k = key(call);
      return { limiter: perKey.get(k), key: k };
    };
  }
  const fixed: Chosen<L> = { limiter: choice, key: undefined };
  return () => fixed;
}

function scopeOf(name: string, key: string | undefined): string {
  return key === undefined ? `"${name}"` : `"${name}" for key "${key}"`;
}
