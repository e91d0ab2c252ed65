import { ClosedError, ConfigError, ManualClock } from '@trellis/core';
import type { CircuitStateChanged } from '@trellis/core';
import { CircuitBreaker, CircuitOpenError, type CircuitBreakerOptions } from '@trellis/resilience';

// Every step in time, the open duration's end included, comes from the ManualClock: no Jest
// fake timers, no sleeps.
let clock: ManualClock;
const made: CircuitBreaker[] = [];

beforeEach(() => {
  clock = new ManualClock(1_000);
});

afterEach(async () => {
  for (const breaker of made.splice(0)) await breaker.close();
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

function toHalfOpen(b: CircuitBreaker, openMs = 5_000): void {
  clock.advance(openMs);
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

  it('goes half-open after the reset timeout on the injected clock, and not before, with no call needed', () => {
    const b = breaker();
    const changes: string[] = [];
    b.onStateChanged((c) => changes.push(`${c.from}->${c.to}`));
    openIt(b);
    clock.advance(4_999);
    expect(b.state).toBe('open');
    expect(b.isCallPermitted).toBe(false);
    clock.advance(1);
    expect(b.state).toBe('half-open');
    expect(changes).toEqual(['closed->open', 'open->half-open']);
  });

  it('goes half-open at the first call past the due time, even before the clock fires its timer', () => {
    // A clock whose timers lag (an event loop busy elsewhere) must not keep the breaker open.
    class LaggingClock extends ManualClock {
      override setTimer(): { cancel(): void } {
        return { cancel: () => undefined };
      }
    }
    clock = new LaggingClock(1_000);
    const b = breaker();
    openIt(b);
    clock.advance(5_000);
    expect(b.state).toBe('open');
    expect(b.isCallPermitted).toBe(true);
    expect(b.tryAcquire()).toBe(true);
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
    clock.advance(4_999);
    expect(b.state).toBe('open');
    clock.advance(1);
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
    clock.advance(5_000);
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

describe('CircuitBreaker: several probes', () => {
  it('lets `probes` calls through while half-open and refuses the rest at once', async () => {
    const b = breaker({ probes: 3, probeSuccessThreshold: 2 });
    openIt(b);
    toHalfOpen(b);
    expect([b.tryAcquire(), b.tryAcquire(), b.tryAcquire()]).toEqual([true, true, true]);
    expect(b.isCallPermitted).toBe(false);
    expect(b.tryAcquire()).toBe(false);
    const refused = await b.execute(async () => 'not run').catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'CIRCUIT_OPEN', reason: 'half-open', retryAfterMs: 0 });
  });

  it('closes once probeSuccessThreshold probes succeeded, whatever the others did', () => {
    const b = breaker({ probes: 3, probeSuccessThreshold: 2 });
    openIt(b);
    toHalfOpen(b);
    fail(b, 1);
    expect(b.state).toBe('half-open'); // one failure of three: two successes may still come
    succeed(b, 1);
    expect(b.state).toBe('half-open');
    succeed(b, 1);
    expect(b.state).toBe('closed');
  });

  it('opens again as soon as the threshold cannot be reached', () => {
    const b = breaker({ probes: 3, probeSuccessThreshold: 2 });
    openIt(b);
    toHalfOpen(b);
    succeed(b, 1);
    fail(b, 1);
    expect(b.state).toBe('half-open');
    fail(b, 1); // two of three failed: at most one success left
    expect(b.state).toBe('open');
  });

  it('needs every probe to succeed by default', () => {
    const b = breaker({ probes: 2 });
    openIt(b);
    toHalfOpen(b);
    succeed(b, 1);
    expect(b.state).toBe('half-open');
    fail(b, 1);
    expect(b.state).toBe('open');
  });

  it('gives a released probe back for another call', () => {
    const b = breaker({ probes: 2 });
    openIt(b);
    toHalfOpen(b);
    expect([b.tryAcquire(), b.tryAcquire(), b.tryAcquire()]).toEqual([true, true, false]);
    b.release();
    expect(b.tryAcquire()).toBe(true);
    expect(b.tryAcquire()).toBe(false);
  });

  it('counts probes undecided resetTimeoutMs after the last went out as failed', () => {
    const b = breaker({ probes: 2 });
    openIt(b);
    toHalfOpen(b);
    expect(b.tryAcquire()).toBe(true);
    clock.advance(1_000);
    expect(b.tryAcquire()).toBe(true);
    clock.advance(4_999);
    expect(b.tryAcquire()).toBe(false);
    expect(b.state).toBe('half-open');
    clock.advance(1);
    expect(b.tryAcquire()).toBe(false);
    expect(b.state).toBe('open');
  });
});

describe('CircuitBreaker: backoff of the open duration', () => {
  it('doubles the open duration after each failed half-open, up to backoffMaxMs, and resets it once closed', () => {
    const b = breaker({ backoffMaxMs: 15_000 });
    const openFor = (): number => {
      const opened = clock.now();
      while (b.state === 'open') clock.advance(100);
      return clock.now() - opened;
    };
    openIt(b);
    expect(openFor()).toBe(5_000);
    fail(b, 1);
    expect(b.rejection().retryAfterMs).toBe(10_000);
    expect(openFor()).toBe(10_000);
    fail(b, 1);
    expect(openFor()).toBe(15_000); // 20 000 capped
    fail(b, 1);
    expect(openFor()).toBe(15_000);
    succeed(b, 1);
    expect(b.state).toBe('closed');
    openIt(b);
    expect(openFor()).toBe(5_000); // back to resetTimeoutMs
  });
});

describe('CircuitBreaker: isolate', () => {
  it('holds the breaker open by hand until every isolation is disposed, then closes it afresh', async () => {
    const b = breaker();
    const changes: string[] = [];
    b.onStateChanged((c) => changes.push(`${c.from}->${c.to}`));
    succeed(b, 2);
    fail(b, 1);
    const first = b.isolate();
    const second = b.isolate();
    expect(b.state).toBe('isolated');
    expect(b.isCallPermitted).toBe(false);
    let ran = false;
    const refused = await b.execute(async () => (ran = true)).catch((e: unknown) => e);
    expect(ran).toBe(false);
    expect(refused).toBeInstanceOf(CircuitOpenError);
    expect(refused).toMatchObject({ reason: 'isolated', retryAfterMs: Number.POSITIVE_INFINITY });
    expect((refused as Error).message).toContain('isolated');
    clock.advance(60_000); // no open duration ends an isolation
    expect(b.state).toBe('isolated');
    first.dispose();
    first.dispose(); // once only: it must not release the second
    expect(b.state).toBe('isolated');
    second.dispose();
    expect(b.state).toBe('closed');
    expect(b.snapshot()).toMatchObject({ calls: 0, failures: 0 });
    expect(changes).toEqual(['closed->isolated', 'isolated->closed']);
  });

  it('takes over an open breaker, whose open duration then no longer runs', () => {
    const b = breaker();
    openIt(b);
    const isolation = b.isolate();
    expect(clock.pendingTimers).toBe(0);
    clock.advance(5_000);
    expect(b.state).toBe('isolated');
    expect(b.tryAcquire()).toBe(false);
    isolation.dispose();
    expect(b.state).toBe('closed');
    expect(b.tryAcquire()).toBe(true);
  });

  it('does not count outcomes of calls let through before it was isolated', () => {
    const b = breaker();
    expect(b.tryAcquire()).toBe(true);
    const isolation = b.isolate();
    b.onSuccess();
    b.onFailure();
    expect(b.state).toBe('isolated');
    isolation.dispose();
  });
});

describe('CircuitBreaker: save and restore', () => {
  it('restores an open breaker open for the rest of its open duration, on the new clock', () => {
    const b = breaker();
    openIt(b);
    clock.advance(2_000);
    const saved = b.toJSON();
    expect(saved).toEqual({
      state: 'open',
      openRemainingMs: 3_000,
      openDurationMs: 5_000,
      calls: 0,
      failures: 0,
      warmUpRemainingMs: 0,
    });
    // Through JSON, into another process with its own clock.
    clock = new ManualClock(50_000);
    const restored = breaker({ state: JSON.parse(JSON.stringify(saved)) as typeof saved });
    expect(restored.state).toBe('open');
    expect(restored.rejection().retryAfterMs).toBe(3_000);
    clock.advance(2_999);
    expect(restored.state).toBe('open');
    clock.advance(1);
    expect(restored.state).toBe('half-open');
  });

  it('restores the window of a closed breaker and the grown open duration', () => {
    const b = breaker({ backoffMaxMs: 40_000 });
    succeed(b, 1);
    fail(b, 1);
    const closed = breaker({ state: b.toJSON(), backoffMaxMs: 40_000 });
    expect(closed.snapshot()).toEqual({ state: 'closed', calls: 2, failures: 1, failureRate: 0.5 });
    fail(closed, 1);
    expect(closed.state).toBe('closed'); // 3 calls
    fail(closed, 1);
    expect(closed.state).toBe('open');
    toHalfOpen(closed);
    fail(closed, 1); // open for 10 000 now
    const grown = breaker({ state: closed.toJSON(), backoffMaxMs: 40_000 });
    expect(grown.toJSON()).toMatchObject({ state: 'open', openRemainingMs: 10_000, openDurationMs: 10_000 });
    toHalfOpen(grown, 10_000);
    fail(grown, 1);
    expect(grown.rejection().retryAfterMs).toBe(20_000);
  });

  it('restores a half-open breaker with its probes, and an isolated one as open for a whole open duration', () => {
    const b = breaker({ probes: 2 });
    openIt(b);
    toHalfOpen(b);
    const half = breaker({ probes: 2, state: b.toJSON() });
    expect(half.state).toBe('half-open');
    expect([half.tryAcquire(), half.tryAcquire(), half.tryAcquire()]).toEqual([true, true, false]);
    const isolation = b.isolate();
    expect(b.toJSON().state).toBe('isolated');
    const after = breaker({ state: b.toJSON() });
    isolation.dispose();
    expect(after.state).toBe('open');
    clock.advance(5_000);
    expect(after.state).toBe('half-open');
  });

  it('keeps the rest of a warm-up period', () => {
    const b = breaker({ allowWarmUp: true });
    clock.advance(6_000);
    const warm = breaker({ state: b.toJSON() });
    expect(warm.toJSON().warmUpRemainingMs).toBe(4_000);
    fail(warm, 4);
    expect(warm.state).toBe('closed');
  });

  it.each([
    ['state', { state: 'ajar' }],
    ['openRemainingMs', { openRemainingMs: -1 }],
    ['calls', { calls: 'many' }],
    ['failures', { calls: 1, failures: 2 }],
  ])('refuses a saved state with a bad %s, naming the field', (field, bad) => {
    const good = breaker().toJSON();
    const attempt = (): CircuitBreaker => breaker({ state: { ...good, ...bad } as unknown as typeof good });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(`breaker.state.${field}`);
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
    clock.advance(9_999);
    fail(b, 1);
    expect(b.state).toBe('closed');
    clock.advance(1); // warm-up over; the first ten failures have left the window
    fail(b, 3);
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
    ['resetTimeoutMs', Number.POSITIVE_INFINITY],
    ['backoffMaxMs', 4_999],
    ['probes', 0],
    ['probes', 1.5],
    ['probes', 1_001],
    ['probeSuccessThreshold', 0],
    ['probeSuccessThreshold', 2],
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
    clock.advance(9_999);
    expect(b.state).toBe('open');
    clock.advance(1); // resetTimeoutMs 10 000
    expect(b.state).toBe('half-open');
    expect(b.tryAcquire()).toBe(true); // one probe (probes 1)
    expect(b.tryAcquire()).toBe(false);
    b.onFailure();
    clock.advance(9_999); // no backoff by default: backoffMaxMs = resetTimeoutMs
    expect(b.state).toBe('open');
    clock.advance(1);
    expect(b.state).toBe('half-open');
  });

  it('keeps no timer while closed, one on its clock while open, none after close', async () => {
    const b = breaker();
    expect(clock.pendingTimers).toBe(0);
    openIt(b);
    expect(clock.pendingTimers).toBe(1);
    await b.close();
    expect(clock.pendingTimers).toBe(0);
    expect(b.tryAcquire()).toBe(true); // closed for good: no protection, nothing counted
    b.onFailure();
    expect(b.snapshot().failures).toBe(4);
    await b.close(); // twice is fine
    expect(() => b.isolate()).toThrow(ClosedError);
  });
});
