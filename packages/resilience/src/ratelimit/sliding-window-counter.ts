import { ConfigError, systemClock, type Clock } from '@trellis/core';
import { granted, retryAfter, type Decision } from '../shared/decision.js';
import type { RateLimiter } from './rate-limiter.js';

export interface SlidingWindowCounterOptions {
  /** Calls allowed in any window of `windowMs`. */
  readonly limit: number;
  /** Length of the window; default 1 000 ms. */
  readonly windowMs?: number;
  readonly clock?: Clock;
}

/**
 * A sliding-window counter: at most `limit` calls in any window of `windowMs`, estimated from
 * the count of the current fixed window plus the previous one's, weighted by how much of it
 * still overlaps the sliding window (the approach Cloudflare and Envoy's local limiter use).
 * Two counters of state whatever the rate, unlike a log of timestamps; no burst at a window
 * boundary, unlike a fixed window.
 *
 * @throws ConfigError from the constructor for a limit or window that is not positive.
 * @example
 * const perMinute = new SlidingWindowCounter({ limit: 600, windowMs: 60_000 });
 * const decision = perMinute.tryAcquire();
 */
export class SlidingWindowCounter implements RateLimiter {
  readonly limit: number;
  readonly windowMs: number;
  readonly #clock: Clock;
  #windowStart: number;
  #current = 0;
  #previous = 0;

  constructor(options: SlidingWindowCounterOptions) {
    const { limit } = options;
    const windowMs = options.windowMs ?? 1_000;
    if (!(Number.isInteger(limit) && limit >= 1))
      throw new ConfigError('limit', `must be an integer >= 1, got ${limit}`);
    if (!(Number.isFinite(windowMs) && windowMs > 0)) {
      throw new ConfigError('windowMs', `must be a positive number of milliseconds, got ${windowMs}`);
    }
    this.limit = limit;
    this.windowMs = windowMs;
    this.#clock = options.clock ?? systemClock;
    this.#windowStart = this.#startOf(this.#clock.now());
  }

  tryAcquire(permits = 1): Decision {
    if (permits > this.limit) throw new ConfigError('permits', `${permits} exceeds the limit of ${this.limit}`);
    const now = this.#clock.now();
    this.#roll(now);
    const w = this.windowMs;
    const elapsed = now - this.#windowStart;
    const estimate = this.#previous * (1 - elapsed / w) + this.#current;
    if (estimate + permits <= this.limit) {
      this.#current += permits;
      return granted;
    }
    if (this.#current + permits <= this.limit) {
      // Only the previous window's share stands in the way; it shrinks linearly.
      return retryAfter(w * (1 - (this.limit - this.#current - permits) / this.#previous) - elapsed);
    }
    // Wait for the next window, where this window's count becomes the shrinking share.
    return retryAfter(w - elapsed + Math.max(0, w * (1 - (this.limit - permits) / this.#current)));
  }

  /** Calls counted in the sliding window ending now (an estimate, see the class comment). */
  get count(): number {
    const now = this.#clock.now();
    this.#roll(now);
    return this.#previous * (1 - (now - this.#windowStart) / this.windowMs) + this.#current;
  }

  get idle(): boolean {
    return this.count === 0;
  }

  #startOf(now: number): number {
    return Math.floor(now / this.windowMs) * this.windowMs;
  }

  #roll(now: number): void {
    const start = this.#startOf(now);
    if (start === this.#windowStart) return;
    this.#previous = start - this.#windowStart === this.windowMs ? this.#current : 0;
    this.#current = 0;
    this.#windowStart = start;
  }
}
