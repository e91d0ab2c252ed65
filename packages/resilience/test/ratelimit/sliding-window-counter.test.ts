import { ConfigError, ManualClock } from '@trellis/core';
import { SlidingWindowCounter } from '@trellis/resilience';
import { configField } from '../fixtures.js';

describe('SlidingWindowCounter', () => {
  it('allows the limit within one window and refuses the next call until the window moves on', () => {
    const clock = new ManualClock();
    const window = new SlidingWindowCounter({ limit: 3, windowMs: 1_000, clock });
    expect([1, 2, 3].map(() => window.tryAcquire().granted)).toEqual([true, true, true]);
    clock.advance(500);
    // The 3 calls sit in the current window: wait for the next one, where they weigh 3 × (1 - d/1000) ≤ 2.
    expect(window.tryAcquire()).toEqual({ granted: false, retryAfterMs: 500 + 334 });
  });

  it('weighs the previous window by its overlap with the sliding window, so there is no burst at the boundary', () => {
    const clock = new ManualClock();
    const window = new SlidingWindowCounter({ limit: 4, windowMs: 1_000, clock });
    clock.advance(900);
    for (let i = 0; i < 4; i++) expect(window.tryAcquire().granted).toBe(true);
    clock.advance(100); // a new fixed window starts; a fixed-window limiter would allow 4 more now
    expect(window.tryAcquire()).toEqual({ granted: false, retryAfterMs: 250 });
    clock.advance(250); // 4 × 0.75 = 3 counted
    expect(window.tryAcquire().granted).toBe(true);
    expect(window.tryAcquire().granted).toBe(false);
    expect(window.count).toBeCloseTo(4, 5);
  });

  it('forgets a previous window that is more than one window old', () => {
    const clock = new ManualClock();
    const window = new SlidingWindowCounter({ limit: 2, windowMs: 1_000, clock });
    window.tryAcquire();
    window.tryAcquire();
    clock.advance(2_500);
    expect(window.count).toBe(0);
    expect(window.idle).toBe(true);
    expect(window.tryAcquire().granted).toBe(true);
  });

  it('never exceeds the limit in any sliding window of a steady run, and grants at least 90% of it', () => {
    const clock = new ManualClock();
    const window = new SlidingWindowCounter({ limit: 10, windowMs: 1_000, clock });
    const grantedAt: number[] = [];
    for (let ms = 0; ms < 10_000; ms += 10) {
      if (window.tryAcquire().granted) grantedAt.push(ms);
      clock.advance(10);
    }
    for (let start = 0; start <= 9_000; start += 100) {
      const inWindow = grantedAt.filter((t) => t >= start && t < start + 1_000).length;
      expect(inWindow).toBeLessThanOrEqual(10);
    }
    expect(grantedAt.length).toBeGreaterThanOrEqual(90);
  });

  it('rejects bad options and impossible requests with ConfigError naming the field', () => {
    expect(configField(() => new SlidingWindowCounter({ limit: 0 }))).toBe('limit');
    expect(configField(() => new SlidingWindowCounter({ limit: 1, windowMs: 0 }))).toBe('windowMs');
    expect(() => new SlidingWindowCounter({ limit: 2 }).tryAcquire(3)).toThrow(ConfigError);
  });
});
