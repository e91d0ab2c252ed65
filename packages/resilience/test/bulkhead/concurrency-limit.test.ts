import { ManualClock } from '@trellis/core';
import { BulkheadFullError, ConcurrencyLimit } from '@trellis/resilience';
import { configField } from '../fixtures.js';

describe('ConcurrencyLimit', () => {
  it('grants up to maxConcurrent slots, refuses beyond them without a queue, and frees on release', async () => {
    const limit = new ConcurrencyLimit({ maxConcurrent: 2, name: 'users', clock: new ManualClock() });
    expect(limit.tryAcquire()).toEqual({ granted: true });
    await limit.acquire();
    expect(limit.tryAcquire()).toEqual({ granted: false });
    const refused: unknown = await limit.acquire().catch((e: unknown) => e);
    expect(BulkheadFullError.is(refused)).toBe(true);
    expect(refused).toMatchObject({ code: 'BULKHEAD_FULL', scope: 'users', retryable: false });
    limit.release();
    expect(limit.active).toBe(1);
    expect(limit.tryAcquire()).toEqual({ granted: true });
  });

  it('queues waiters first come first served and hands each freed slot to the oldest', async () => {
    const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxQueue: 3, clock: new ManualClock() });
    limit.tryAcquire();
    const order: string[] = [];
    const a = limit.acquire().then(() => order.push('a'));
    const b = limit.acquire().then(() => order.push('b'));
    expect(limit.queued).toBe(2);
    // A newcomer may not jump the queue even at the moment a slot frees.
    limit.release();
    expect(limit.tryAcquire()).toEqual({ granted: false });
    await a;
    expect(order).toEqual(['a']);
    expect(limit.active).toBe(1);
    limit.release();
    await b;
    limit.release();
    expect(order).toEqual(['a', 'b']);
    expect(limit.idle).toBe(true);
  });

  it('refuses a call when the queue is full', async () => {
    const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxQueue: 1, clock: new ManualClock() });
    limit.tryAcquire();
    const waiting = limit.acquire();
    await expect(limit.acquire()).rejects.toThrow(/1 calls wait/);
    limit.release();
    await waiting;
    expect(limit.active).toBe(1);
  });

  it('gives up on a waiter after the queue timeout, on the injected clock', async () => {
    const clock = new ManualClock();
    const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxQueue: 5, queueTimeoutMs: 200, clock });
    limit.tryAcquire();
    const waiting = limit.acquire().catch((e: unknown) => e);
    clock.advance(199);
    expect(limit.queued).toBe(1);
    clock.advance(1);
    const error = await waiting;
    expect(BulkheadFullError.is(error)).toBe(true);
    expect(String(error)).toMatch(/queue timeout of 200 ms/);
    expect(limit.queued).toBe(0);
    // The slot is still held by the first caller; releasing it frees it, not a phantom waiter.
    limit.release();
    expect(limit.idle).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });

  it('removes a waiter whose signal aborts, with the signal reason', async () => {
    const clock = new ManualClock();
    const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxQueue: 5, clock });
    limit.tryAcquire();
    const controller = new AbortController();
    const waiting = limit.acquire(controller.signal).catch((e: unknown) => e);
    const next = limit.acquire();
    controller.abort(new Error('caller gave up'));
    expect(await waiting).toEqual(new Error('caller gave up'));
    expect(limit.queued).toBe(1);
    limit.release();
    await next;
    expect(clock.pendingTimers).toBe(0);
    await expect(limit.acquire(AbortSignal.abort(new Error('already')))).rejects.toThrow('already');
  });

  it('throws on a release without a held slot', () => {
    const limit = new ConcurrencyLimit({ maxConcurrent: 1 });
    expect(() => limit.release()).toThrow(/without a held slot/);
  });

  it('rejects bad options naming the field', () => {
    expect(configField(() => new ConcurrencyLimit({ maxConcurrent: 0 }))).toBe('maxConcurrent');
    expect(configField(() => new ConcurrencyLimit({ maxConcurrent: 1, maxQueue: -1 }))).toBe('maxQueue');
    expect(configField(() => new ConcurrencyLimit({ maxConcurrent: 1, queueTimeoutMs: -5 }))).toBe('queueTimeoutMs');
  });
});
