import { jest } from '@jest/globals';
import { ConfigError, ManualClock } from '@trellis/core';
import type { CircuitStateChanged } from '@trellis/core';
import { CircuitBreaker, CircuitOpenError, type CircuitBreakerOptions } from '@trellis/resilience';

// opossum's reset and warm-up timers are real setTimeouts: Jest's fake timers drive them, and
// the ManualClock drives the window and call durations.
let clock: ManualClock;
const made: CircuitBreaker[] = [];

beforeEach(() => {
  jest.useFakeTimers();
  clock = new ManualClock(1_000);
});

afterEach(() => {
  for (const breaker of made.splice(0)) breaker.dispose();
  jest.useRealTimers();
});

function breaker(options: Partial<CircuitBreakerOptions> = {}): CircuitBreaker {
  const b = new CircuitBreaker({
    service: 'users',
    failureRateThreshold: 0.5,
    minimumCalls: 4,
    windowMs: 10_000,
    windowBuckets: 10,
    resetTimeoutMs: 5_000,
    clock,
    ...options,
  });
  made.push(b);
  return b;
}

function succeed(b: CircuitBreaker, times = 1, durationMs = 1): void {
  for (let i = 0; i < times; i++) {
    expect(b.tryAcquire()).toBe(true);
    b.onSuccess(durationMs);
  }
}

function fail(b: CircuitBreaker, times = 1): void {
  for (let i = 0; i < times; i++) {
    expect(b.tryAcquire()).toBe(true);
    b.onFailure(1);
  }
}

function openIt(b: CircuitBreaker): void {
  fail(b, 4);
  expect(b.state).toBe('open');
}

function toHalfOpen(b: CircuitBreaker, resetTimeoutMs = 5_000): void {
  clock.advance(resetTimeoutMs);
  jest.advanceTimersByTime(resetTimeoutMs);
  expect(b.state).toBe('half-open');
}

describe('CircuitBreaker: closed to open', () => {
  it('stays closed below the minimum number of calls, whatever the failure rate', () => {
    const b = breaker();
    fail(b, 3);
    expect(b.state).toBe('closed');
    expect(b.snapshot()).toEqual({ state: 'closed', calls: 3, failures: 3, failureRate: 1 });
  });

  it('opens on the failure that brings the window to the minimum volume at the threshold', () => {
    const b = breaker();
    succeed(b, 2);
    fail(b, 1);
    expect(b.state).toBe('closed'); // 3 calls: below the minimum
    fail(b, 1);
    expect(b.state).toBe('open'); // 4 calls, 2 failed: 50% >= 50%
  });

  it('stays closed while the failure rate is below the threshold', () => {
    const b = breaker();
    succeed(b, 7);
    fail(b, 3); // 30%
    expect(b.state).toBe('closed');
    expect(b.snapshot().failureRate).toBeCloseTo(0.3);
  });

  it('does not open on successes, even with failures above the threshold before the minimum volume', () => {
    const b = breaker({ minimumCalls: 3 });
    fail(b, 2);
    succeed(b, 1); // 3 calls, 67% failed, but only a failure can open it
    expect(b.state).toBe('closed');
    fail(b, 1);
    expect(b.state).toBe('open');
  });

  it('forgets failures that have left the rolling window', () => {
    const b = breaker();
    fail(b, 3);
    clock.advance(10_000); // every slice of the window has gone by
    fail(b, 1);
    expect(b.state).toBe('closed');
    expect(b.snapshot()).toMatchObject({ calls: 1, failures: 1 });
  });

  it('lets calls leave the window one slice at a time', () => {
    const b = breaker();
    fail(b, 2); // slice at t = 1000
    clock.advance(5_000);
    succeed(b, 2); // slice at t = 6000
    clock.advance(5_000); // t = 11000: the first slice has left, the second is still in
    expect(b.snapshot()).toMatchObject({ calls: 2, failures: 0 });
    fail(b, 2);
    expect(b.state).toBe('open'); // 4 calls, 2 failed
  });
});

describe('CircuitBreaker: open', () => {
  it('refuses calls without running them, saying when the probe may go', async () => {
    const b = breaker();
    openIt(b);
    clock.advance(1_500);
    let ran = false;
    const refused = await b.execute(async () => (ran = true)).catch((e: unknown) => e);
    expect(ran).toBe(false);
    expect(refused).toBeInstanceOf(CircuitOpenError);
    expect(refused).toMatchObject({ code: 'CIRCUIT_OPEN', service: 'users', retryable: false, retryAfterMs: 3_500 });
    expect(CircuitOpenError.is(refused)).toBe(true);
    expect(b.isCallPermitted).toBe(false);
  });

  it('does not count outcomes of calls let through before it opened', () => {
    const b = breaker();
    expect(b.tryAcquire()).toBe(true); // a call in flight
    openIt(b);
    b.onSuccess(); // its late success must not close the breaker
    expect(b.state).toBe('open');
  });

  it('goes half-open after the reset timeout, and not before', () => {
    const b = breaker();
    openIt(b);
    jest.advanceTimersByTime(4_999);
    expect(b.state).toBe('open');
    jest.advanceTimersByTime(1);
    expect(b.state).toBe('half-open');
  });
});

describe('CircuitBreaker: half-open', () => {
  it('lets exactly one probe through', () => {
    const b = breaker();
    openIt(b);
    toHalfOpen(b);
    expect(b.isCallPermitted).toBe(true);
    expect(b.tryAcquire()).toBe(true);
    expect(b.isCallPermitted).toBe(false);
    expect(b.tryAcquire()).toBe(false);
    expect(b.tryAcquire()).toBe(false);
  });

  it('closes when the probe succeeds, with an empty window', () => {
    const b = breaker();
    openIt(b);
    toHalfOpen(b);
    succeed(b, 1);
    expect(b.state).toBe('closed');
    expect(b.snapshot()).toMatchObject({ calls: 0, failures: 0 });
    fail(b, 1); // the failures from before it opened are gone: one new failure does not reopen
    expect(b.state).toBe('closed');
  });

  it('opens again when the probe fails, for another full reset timeout', () => {
    const b = breaker();
    openIt(b);
    toHalfOpen(b);
    fail(b, 1);
    expect(b.state).toBe('open');
    jest.advanceTimersByTime(4_999);
    expect(b.state).toBe('open');
    jest.advanceTimersByTime(1);
    expect(b.state).toBe('half-open');
  });

  it('lets another probe go when the first one is released uncounted', () => {
    const b = breaker();
    openIt(b);
    toHalfOpen(b);
    expect(b.tryAcquire()).toBe(true);
    b.release();
    expect(b.state).toBe('half-open');
    expect(b.tryAcquire()).toBe(true);
    expect(b.tryAcquire()).toBe(false);
  });

  it('counts a probe with no outcome after resetTimeoutMs as failed, and opens again', () => {
    const b = breaker();
    openIt(b);
    toHalfOpen(b);
    expect(b.tryAcquire()).toBe(true); // the probe hangs
    clock.advance(4_999);
    expect(b.isCallPermitted).toBe(false);
    expect(b.tryAcquire()).toBe(false);
    expect(b.state).toBe('half-open');
    clock.advance(1);
    expect(b.isCallPermitted).toBe(true); // load balancing may pick it again...
    expect(b.tryAcquire()).toBe(false); // ...and that ask fails the stale probe
    expect(b.state).toBe('open');
    b.onSuccess(); // the hung probe's late answer no longer counts
    expect(b.state).toBe('open');
    jest.advanceTimersByTime(5_000);
    expect(b.state).toBe('half-open');
    expect(b.tryAcquire()).toBe(true);
  });

  it('runs the probe through execute and closes on its success', async () => {
    const b = breaker();
    openIt(b);
    toHalfOpen(b);
    await expect(b.execute(async () => 'ok')).resolves.toBe('ok');
    expect(b.state).toBe('closed');
  });
});

describe('CircuitBreaker: slow calls', () => {
  it('counts a success at or over slowCallMs as a failure', () => {
    const b = breaker({ slowCallMs: 200 });
    expect(b.measuresDuration).toBe(true);
    succeed(b, 2, 199);
    expect(b.snapshot().failures).toBe(0);
    succeed(b, 1, 200);
    succeed(b, 1, 5_000);
    expect(b.snapshot().failures).toBe(2);
    expect(b.state).toBe('open'); // 4 calls, 2 slow
  });

  it('times execute() with the injected clock', async () => {
    const b = breaker({ slowCallMs: 100, minimumCalls: 1 });
    await b.execute(async () => clock.advance(150));
    expect(b.state).toBe('open');
  });

  it('reopens when the probe is slow', () => {
    const b = breaker({ slowCallMs: 100 });
    openIt(b);
    toHalfOpen(b);
    succeed(b, 1, 100);
    expect(b.state).toBe('open');
  });

  it('does not time calls when no slow-call threshold is set', () => {
    const b = breaker();
    expect(b.measuresDuration).toBe(false);
    succeed(b, 4, 1e9);
    expect(b.snapshot().failures).toBe(0);
  });
});

describe('CircuitBreaker: warm-up', () => {
  it('never opens during the first window when allowWarmUp is set (opossum allowWarmUp)', () => {
    const b = breaker({ allowWarmUp: true });
    fail(b, 10);
    expect(b.state).toBe('closed');
    jest.advanceTimersByTime(10_000);
    fail(b, 1);
    expect(b.state).toBe('open');
  });
});

describe('CircuitBreaker: events', () => {
  it('reports every change of state with the service and instance', () => {
    const b = breaker({ instance: 'users-1' });
    const changes: CircuitStateChanged[] = [];
    b.onStateChanged((c) => changes.push(c));
    succeed(b, 2);
    fail(b, 2);
    toHalfOpen(b);
    fail(b, 1);
    toHalfOpen(b);
    succeed(b, 1);
    expect(changes).toEqual([
      {
        type: 'circuit-state-changed',
        service: 'users',
        instance: 'users-1',
        from: 'closed',
        to: 'open',
        calls: 4,
        failureRate: 0.5,
      },
      {
        type: 'circuit-state-changed',
        service: 'users',
        instance: 'users-1',
        from: 'open',
        to: 'half-open',
        calls: 4,
        failureRate: 0.5,
      },
      {
        type: 'circuit-state-changed',
        service: 'users',
        instance: 'users-1',
        from: 'half-open',
        to: 'open',
        calls: 4,
        failureRate: 0.5,
      },
      {
        type: 'circuit-state-changed',
        service: 'users',
        instance: 'users-1',
        from: 'open',
        to: 'half-open',
        calls: 4,
        failureRate: 0.5,
      },
      {
        type: 'circuit-state-changed',
        service: 'users',
        instance: 'users-1',
        from: 'half-open',
        to: 'closed',
        calls: 4,
        failureRate: 0.5,
      },
    ]);
  });

  it('stops reporting once the subscription is disposed', () => {
    const b = breaker();
    const changes: string[] = [];
    const subscription = b.onStateChanged((c) => changes.push(c.to));
    openIt(b);
    subscription.dispose();
    toHalfOpen(b);
    expect(changes).toEqual(['open']);
  });
});

describe('CircuitBreaker: configuration and lifecycle', () => {
  it.each([
    ['failureRateThreshold', 0],
    ['failureRateThreshold', 1.01],
    ['minimumCalls', 0],
    ['minimumCalls', 1.5],
    ['windowMs', 0],
    ['windowBuckets', 0],
    ['windowBuckets', 1_001],
    ['resetTimeoutMs', -1],
    ['resetTimeoutMs', 2 ** 31],
    ['slowCallMs', 0],
    ['failureRateThreshold', Number.NaN],
  ])('rejects %s = %p with a ConfigError naming the field', (field, value) => {
    const attempt = (): CircuitBreaker => breaker({ [field]: value });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(`breaker.${field}`);
  });

  it('uses opossum-like defaults where none are given', () => {
    const b = new CircuitBreaker({ service: 'users', clock });
    made.push(b);
    fail(b, 19);
    expect(b.state).toBe('closed'); // minimumCalls 20
    fail(b, 1);
    expect(b.state).toBe('open');
    jest.advanceTimersByTime(9_999);
    expect(b.state).toBe('open');
    jest.advanceTimersByTime(1); // resetTimeoutMs 10 000
    expect(b.state).toBe('half-open');
  });

  it('keeps no timer while closed, one while open, none after dispose', () => {
    const b = breaker();
    expect(jest.getTimerCount()).toBe(0);
    openIt(b);
    expect(jest.getTimerCount()).toBe(1);
    b.dispose();
    expect(jest.getTimerCount()).toBe(0);
    expect(b.tryAcquire()).toBe(true); // disposed: no protection, nothing counted
    b.onFailure();
    expect(b.snapshot().failures).toBe(4);
  });
});
