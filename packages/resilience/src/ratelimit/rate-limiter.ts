import type { Decision } from '../shared/decision.js';

/**
 * The low-level protocol of a rate limit: ask, and either go on or wait `retryAfterMs`. Usable
 * where a call is not a function (a server hook, an axios interceptor).
 *
 * @example
 * const decision = limiter.tryAcquire();
 * if (!decision.granted) return reply.code(429).header('retry-after', Math.ceil((decision.retryAfterMs ?? 1_000) / 1_000)).send();
 */
export interface RateLimiter {
  /**
   * Takes `permits` (default 1) if the limit allows them now; never waits. A refusal carries
   * `retryAfterMs`.
   * @throws ConfigError when `permits` exceeds what the limit can ever grant at once.
   */
  tryAcquire(permits?: number): Decision;
  /** True when the limiter holds no state worth keeping: dropping it and making a new one changes nothing. */
  readonly idle: boolean;
}
