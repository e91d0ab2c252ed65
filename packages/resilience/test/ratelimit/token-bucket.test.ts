import { ManualClock } from '@trellis/core';
import { TokenBucket } from '@trellis/resilience';
import { configField } from '../fixtures.js';

describe('TokenBucket', () => {
  it('starts full: grants a burst at once, then refuses with the time until the next token', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 3, clock });
    expect([1, 2, 3].map(() => bucket.tryAcquire().granted)).toEqual([true, true, true]);
    expect(bucket.tryAcquire()).toEqual({ granted: false, retryAfterMs: 100 });
    clock.advance(40);
    expect(bucket.tryAcquire()).toEqual({ granted: false, retryAfterMs: 60 });
  });

  it('refills at the rate, lazily from the clock, and never beyond the burst', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 3, clock });
    for (let i = 0; i < 3; i++) bucket.tryAcquire();
    clock.advance(100);
    expect(bucket.tryAcquire().granted).toBe(true);
    expect(bucket.tryAcquire().granted).toBe(false);
    clock.advance(60_000);
    expect(bucket.available).toBe(3);
    expect(clock.pendingTimers).toBe(0);
  });

  it('sustains its rate over a long run: 10 per second for 10 seconds is 100 calls plus the burst', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 5, clock });
    let grantedCount = 0;
    for (let ms = 0; ms <= 10_000; ms += 5) {
      if (bucket.tryAcquire().granted) grantedCount++;
      clock.advance(5);
    }
    expect(grantedCount).toBe(105);
  });

  it('takes several permits at once, and says how long until that many are there', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSecond: 2, burst: 4, clock });
    expect(bucket.tryAcquire(3).granted).toBe(true);
    expect(bucket.tryAcquire(3)).toEqual({ granted: false, retryAfterMs: 1_000 });
    expect(configField(() => bucket.tryAcquire(5))).toBe('permits');
  });

  it('is idle only when full again', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSecond: 1, burst: 2, clock });
    expect(bucket.idle).toBe(true);
    bucket.tryAcquire();
    expect(bucket.idle).toBe(false);
    clock.advance(1_000);
    expect(bucket.idle).toBe(true);
  });

  it('defaults the burst to one second of rate, and rejects bad options naming the field', () => {
    expect(new TokenBucket({ ratePerSecond: 50 }).burst).toBe(50);
    expect(new TokenBucket({ ratePerSecond: 0.5 }).burst).toBe(1);
    expect(configField(() => new TokenBucket({ ratePerSecond: 0 }))).toBe('ratePerSecond');
    expect(configField(() => new TokenBucket({ ratePerSecond: 5, burst: 0.5 }))).toBe('burst');
  });
});
