import type { Event, TelemetryEvent } from '@trellis/core';
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

/**
 * A rate limit whose decision is taken elsewhere, e.g. a limit shared by every instance of a
 * service and kept in Redis (`ClusterRateLimiter` of `@trellis/ratelimit`): the answer comes as
 * a promise. Wherever a {@link RateLimiter} is taken (the `RateLimit` stage, an app's inbound
 * limits, a controller's `@RateLimit`), one of these is taken too, with the same answers
 * (RateLimitedError, 429). A local limiter keeps its synchronous path: the places that take
 * both look at what `tryAcquire` returned, and only a promise is awaited.
 *
 * @example
 * const decision = await sharedLimiter.tryAcquire();
 * if (!decision.granted) throw new RateLimitedError('"search"', decision.retryAfterMs ?? 1_000);
 */
export interface AsyncRateLimiter {
  /**
   * Takes `permits` (default 1) if the limit allows them now; never waits for permits. The
   * promise settles within the limiter's own time budget and does not reject when the store is
   * away (the limiter decides some other way then).
   * @throws ConfigError (rejects) when `permits` exceeds what the limit can ever grant at once.
   */
  tryAcquire(permits?: number): Promise<Decision>;
  /** True when dropping this limiter and making a new one changes nothing (see {@link RateLimiter.idle}). */
  readonly idle: boolean;
  /** The limiter's own events (falling back to a local limit and back), forwarded to the telemetry of the stack or app it is used in. */
  readonly onEvent?: Event<TelemetryEvent>;
  /**
   * Tells the limiter how many instances share it now, for a limiter that divides its limit
   * among them when its store is away; an app calls it with its discovery of its own service.
   * A limiter given a count of its own ignores it.
   */
  countInstancesWith?(count: () => number): void;
}

/** A limiter whose answer is at once, or one whose answer comes later. */
export type AnyRateLimiter = RateLimiter | AsyncRateLimiter;
