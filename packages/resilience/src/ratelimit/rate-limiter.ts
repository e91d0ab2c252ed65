/** The answer of a rate limiter to one request for permission. */
export type Decision =
  | { readonly granted: true }
  | {
      readonly granted: false;
      /** Milliseconds until the same request could be granted (at least 1). */
      readonly retryAfterMs: number;
    };

/** The one granted decision, shared so that granting allocates nothing. */
export const granted: Decision = Object.freeze({ granted: true });

/**
 * The low-level protocol of a rate limit: ask, and either go on or wait `retryAfterMs`. Usable
 * where a call is not a function (a server hook, an axios interceptor).
 *
 * @example
 * const decision = limiter.tryAcquire();
 * if (!decision.granted) return reply.code(429).header('retry-after', Math.ceil(decision.retryAfterMs / 1000)).send();
 */
export interface RateLimiter {
  /**
   * Takes `permits` (default 1) if the limit allows them now; never waits.
   * @throws ConfigError when `permits` exceeds what the limit can ever grant at once.
   */
  tryAcquire(permits?: number): Decision;
  /** True when the limiter holds no state worth keeping: dropping it and making a new one changes nothing. */
  readonly idle: boolean;
}

/** `ms` rounded up to whole milliseconds, at least 1: a rejection always says "later". */
export function retryAfter(ms: number): Decision {
  return { granted: false, retryAfterMs: Math.max(1, Math.ceil(ms)) };
}
