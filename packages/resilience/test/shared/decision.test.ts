import { ManualClock } from '@trellis/core';
import {
  ConcurrencyLimit,
  PerKey,
  SlidingWindowCounter,
  TokenBucket,
  type Decision,
  type RateLimiter,
} from '@trellis/resilience';

/** What every limiter shares: one question, one type of answer. */
interface Limiter {
  tryAcquire(): Decision;
}

describe('tryAcquire', () => {
  it('answers with one Decision type across limiters: granted, then refused with retryAfterMs where it applies', () => {
    const clock = new ManualClock();
    const limiters: ReadonlyArray<readonly [string, Limiter]> = [
      ['token bucket', new TokenBucket({ ratePerSecond: 1, burst: 1, clock })],
      ['sliding window counter', new SlidingWindowCounter({ limit: 1, windowMs: 1_000, clock })],
      ['concurrency limit', new ConcurrencyLimit({ maxConcurrent: 1, clock })],
      ['per key', new PerKey({ create: () => new TokenBucket({ ratePerSecond: 1, burst: 1, clock }), clock }).get('a')],
    ];
    const answers = limiters.map(([name, limiter]) => [name, limiter.tryAcquire(), limiter.tryAcquire()]);
    expect(answers).toEqual([
      ['token bucket', { granted: true }, { granted: false, retryAfterMs: 1_000 }],
      // The next window starts counting this one in full; the call fits once it has slid past.
      ['sliding window counter', { granted: true }, { granted: false, retryAfterMs: 2_000 }],
      // A slot frees when a call ends, which no limiter can foretell: no retryAfterMs.
      ['concurrency limit', { granted: true }, { granted: false }],
      ['per key', { granted: true }, { granted: false, retryAfterMs: 1_000 }],
    ]);
  });

  it('lets a rate limiter stand where any limiter is expected', () => {
    const bucket: RateLimiter = new TokenBucket({ ratePerSecond: 10, clock: new ManualClock() });
    const limiter: Limiter = bucket;
    expect(limiter.tryAcquire().granted).toBe(true);
  });
});
