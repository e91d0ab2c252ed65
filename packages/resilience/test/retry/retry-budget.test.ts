import { ManualClock } from '@trellis/core';
import { RetryBudget } from '@trellis/resilience';
import { configField } from '../fixtures.js';

describe('RetryBudget', () => {
  it('allows the floor of retries per second over the window even with no calls', () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ ttlMs: 1_000, minRetriesPerSecond: 3, retryShare: 0, clock });
    expect(budget.balance).toBe(3);
    expect([1, 2, 3, 4].map(() => budget.tryWithdraw())).toEqual([true, true, true, false]);
    expect(budget.balance).toBe(0);
  });

  it('adds the configured share of calls: 10 calls at 20% buy 2 retries beyond the floor', () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ ttlMs: 1_000, minRetriesPerSecond: 1, retryShare: 0.2, clock });
    for (let i = 0; i < 10; i++) budget.deposit();
    expect(budget.balance).toBe(3);
    expect([1, 2, 3, 4].map(() => budget.tryWithdraw())).toEqual([true, true, true, false]);
  });

  it('forgets deposits and withdrawals once they are older than the window', () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ ttlMs: 10_000, minRetriesPerSecond: 0, retryShare: 0.5, clock });
    for (let i = 0; i < 4; i++) budget.deposit();
    clock.advance(5_000);
    for (let i = 0; i < 4; i++) budget.deposit();
    expect(budget.balance).toBe(4);
    budget.tryWithdraw();
    clock.advance(5_000); // the first four deposits expire
    expect(budget.balance).toBe(1);
    clock.advance(5_000); // the rest, and the withdrawal, expire
    expect(budget.balance).toBe(0);
    for (let i = 0; i < 2; i++) budget.deposit();
    expect(budget.balance).toBe(1);
    clock.advance(1_000_000);
    expect(budget.balance).toBe(0);
  });

  it('keeps retries to the share of a steady load plus the floor, whatever the failure rate', () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ clock }); // 20% + 10 per second over 10 s
    let retries = 0;
    // 60 s at 1 000 calls per second, every call failing and asking for a retry.
    for (let ms = 0; ms < 60_000; ms++) {
      budget.deposit();
      if (budget.tryWithdraw()) retries++;
      clock.advance(1);
    }
    expect(retries).toBeGreaterThan(60_000 * 0.2);
    expect(retries).toBeLessThanOrEqual(60_000 * 0.2 + 10 * 70);
  });

  it('rejects options out of range, naming the field', () => {
    expect(configField(() => new RetryBudget({ ttlMs: 10 }))).toBe('ttlMs');
    expect(configField(() => new RetryBudget({ minRetriesPerSecond: -1 }))).toBe('minRetriesPerSecond');
    expect(configField(() => new RetryBudget({ retryShare: 1.5 }))).toBe('retryShare');
  });
});
