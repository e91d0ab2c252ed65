import { CallContext, ManualClock, type Call, type Reply } from '@trellis/core';
import {
  checkCircuitBreakerConfig,
  checkHedgingLimits,
  checkRetryLimits,
  CircuitBreakerRegistry,
  Deadline,
  Hedging,
  Retry,
  RetryBudget,
  Timeout,
} from '@trellis/resilience';
import { configField, instance as instanceOf } from './fixtures.js';

const instance = instanceOf('users-1');
const call: Call = { service: 'users', method: 'GET', path: '/users/1', headers: {} };
const reply = (status: number): Reply => ({ status, headers: {}, body: null, instance });
const attempt = (): CallContext => {
  const context = new CallContext();
  context.instance = instance;
  return context;
};

describe('policies changed while calls run', () => {
  it('Retry.update changes attempts for the next call, while a call retrying finishes on the policy it started with', async () => {
    const retry = new Retry({ random: () => 0, budget: false });
    let sent = 0;
    let release!: () => void;
    const first = retry.filter(call, new CallContext(), async () => {
      sent++;
      if (sent === 1) await new Promise<void>((resolve) => (release = resolve));
      return reply(503);
    });
    await Promise.resolve();
    retry.update({ maxAttempts: 1, budget: false });
    release();
    expect((await first).status).toBe(503);
    expect(sent).toBe(3); // the 3 attempts it started with
    sent = 0;
    await retry.filter(call, new CallContext(), async () => {
      sent++;
      return reply(503);
    });
    expect(sent).toBe(1);
    expect(configField(() => retry.update({ maxAttempts: 0 }))).toBe('retry.maxAttempts');
    expect(retry.maxAttempts).toBe(1);
  });

  it('Retry.update keeps the budget in use unless given one, and drops it with false', () => {
    const budget = new RetryBudget();
    const retry = new Retry({ budget });
    retry.update({ maxAttempts: 2 });
    expect(retry.budget).toBe(budget);
    retry.update({ budget: false });
    expect(retry.budget).toBeUndefined();
  });

  it('Timeout.update limits the attempts that start after it; false lets them run', async () => {
    const clock = new ManualClock();
    const timeout = new Timeout({ timeoutMs: 10_000, clock });
    const never = (): Promise<Reply> => new Promise<Reply>(() => undefined);
    const old = timeout.filter(call, attempt(), never).catch((e: unknown) => e);
    timeout.update(100);
    const limited = timeout.filter(call, attempt(), never).catch((e: unknown) => e);
    await clock.advanceAsync(100);
    // The new limit fires on time, though an older attempt with a later deadline is queued first.
    expect(await limited).toMatchObject({ code: 'TIMEOUT', timeoutMs: 100 });
    timeout.update(false);
    expect(timeout.timeoutMs).toBe(false);
    expect((await timeout.filter(call, attempt(), async () => reply(200))).status).toBe(200);
    await clock.advanceAsync(10_000);
    expect(await old).toMatchObject({ code: 'TIMEOUT', timeoutMs: 10_000 });
    expect(configField(() => timeout.update(0))).toBe('timeoutMs');
  });

  it('Deadline.update sets the limit of the calls that start after it', () => {
    const stage = new Deadline();
    stage.update(2_000);
    expect(stage.timeoutMs).toBe(2_000);
    stage.update(false);
    expect(stage.timeoutMs).toBe(false);
    expect(configField(() => stage.update(-1))).toBe('deadlineMs');
  });

  it('Hedging.update(false) passes calls straight through, and new limits apply to the next call', async () => {
    const clock = new ManualClock();
    const hedging = new Hedging({ clock, delayMs: 10 });
    hedging.update(false);
    expect(hedging.enabled).toBe(false);
    let legs = 0;
    const slow = (): Promise<Reply> => {
      legs++;
      return new Promise<Reply>((resolve) => clock.setTimer(100, () => resolve(reply(200))));
    };
    const passed = hedging.filter(call, new CallContext(), slow);
    await clock.advanceAsync(100);
    await passed;
    expect(legs).toBe(1);
    hedging.update({ delayMs: 20 });
    expect(hedging.enabled).toBe(true);
    const hedged = hedging.filter(call, new CallContext(), slow);
    await clock.advanceAsync(100);
    await hedged;
    expect(legs).toBe(3);
    expect(configField(() => hedging.update({ percentile: 2 }))).toBe('hedging.percentile');
  });

  it("CircuitBreakerRegistry.configure gives one service's breakers new thresholds, keeping their counts, and undefined takes them back", () => {
    const clock = new ManualClock();
    const breakers = new CircuitBreakerRegistry({ clock, minimumCalls: 10 });
    const users = breakers.get('users', 'users-1');
    const orders = breakers.get('orders', 'orders-1');
    for (const b of [users, orders]) {
      b.tryAcquire();
      b.onFailure();
    }
    breakers.configure('users', { minimumCalls: 2, windowMs: 20_000 });
    expect(users.snapshot()).toMatchObject({ calls: 1, failures: 1, state: 'closed' });
    users.tryAcquire();
    users.onFailure();
    expect(users.state).toBe('open');
    orders.tryAcquire();
    orders.onFailure();
    expect(orders.state).toBe('closed');
    expect(breakers.get('users', 'users-2').toJSON()).toMatchObject({ state: 'closed' });
    expect(breakers.policy('users')).toMatchObject({ minimumCalls: 2, windowMs: 20_000 });
    expect(configField(() => breakers.configure('users', { probes: 1, probeSuccessThreshold: 2 }))).toBe(
      'breaker.probeSuccessThreshold',
    );
    expect(breakers.policy('users')).toMatchObject({ minimumCalls: 2 });
    breakers.configure('users', undefined);
    expect(breakers.policy('users')).toMatchObject({ minimumCalls: 10 });
    void breakers.close();
  });

  it("checks fields given as data with the constructors' ranges, leaving bounds on missing fields to later", () => {
    expect(configField(() => checkRetryLimits({ maxAttempts: 1.5 }, 'client.retry'))).toBe('client.retry.maxAttempts');
    expect(configField(() => checkRetryLimits({ backoffBaseMs: 1_000 }))).toBeUndefined();
    expect(configField(() => checkHedgingLimits({ minSamples: 0 }))).toBe('hedging.minSamples');
    expect(configField(() => checkCircuitBreakerConfig({ backoffMaxMs: 5 }))).toBeUndefined();
    expect(configField(() => checkCircuitBreakerConfig({ backoffMaxMs: 5, resetTimeoutMs: 10 }))).toBe(
      'breaker.backoffMaxMs',
    );
  });
});
