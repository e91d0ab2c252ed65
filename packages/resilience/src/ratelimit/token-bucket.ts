import { ConfigError, systemClock, type Clock } from '@trellis/core';
import { granted, retryAfter, type Decision } from '../shared/decision.js';
import type { RateLimiter } from './rate-limiter.js';

export interface TokenBucketOptions {
  /** Tokens added per second: the sustained rate. */
  readonly ratePerSecond: number;
  /** Most tokens the bucket holds: how many calls may come at once after a quiet spell; default `max(1, ratePerSecond)`. */
  readonly burst?: number;
  readonly clock?: Clock;
}

/**
 * A token bucket: allows `ratePerSecond` calls per second on average and bursts of up to
 * `burst`. Refills lazily from the clock on each request, so it holds no timer and two numbers
 * of state. Starts full.
 *
 * @throws ConfigError from the constructor for a rate or burst that is not a positive number.
 * @example
 * const bucket = new TokenBucket({ ratePerSecond: 100, burst: 20 });
 * if (!bucket.tryAcquire().granted) throw new Error('slow down');
 */
export class TokenBucket implements RateLimiter {
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly #perMs: number;
  readonly #clock: Clock;
  #tokens: number;
  #updatedAt: number;

  constructor(options: TokenBucketOptions) {
    const rate = options.ratePerSecond;
    if (!(Number.isFinite(rate) && rate > 0))
      throw new ConfigError('ratePerSecond', `must be a positive number, got ${rate}`);
    const burst = options.burst ?? Math.max(1, rate);
    if (!(Number.isFinite(burst) && burst >= 1)) throw new ConfigError('burst', `must be a number >= 1, got ${burst}`);
    this.ratePerSecond = rate;
    this.burst = burst;
    this.#perMs = rate / 1_000;
    this.#clock = options.clock ?? systemClock;
    this.#tokens = burst;
    this.#updatedAt = this.#clock.now();
  }

  tryAcquire(permits = 1): Decision {
    if (permits > this.burst) throw new ConfigError('permits', `${permits} exceeds the burst of ${this.burst}`);
    this.#refill();
    if (this.#tokens >= permits) {
      this.#tokens -= permits;
      return granted;
    }
    return retryAfter((permits - this.#tokens) / this.#perMs);
  }

  /** Tokens in the bucket now. */
  get available(): number {
    this.#refill();
    return this.#tokens;
  }

  get idle(): boolean {
    return this.available >= this.burst;
  }

  #refill(): void {
    const now = this.#clock.now();
    if (now > this.#updatedAt) {
      this.#tokens = Math.min(this.burst, this.#tokens + (now - this.#updatedAt) * this.#perMs);
      this.#updatedAt = now;
    }
  }
}
