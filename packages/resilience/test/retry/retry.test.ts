import {
  CallContext,
  compose,
  ConnectionError,
  ManualClock,
  NoInstancesError,
  TrellisError,
  UpstreamStatusError,
  type Call,
  type CallContextInit,
  type Reply,
  type ServiceInstance,
} from '@trellis/core';
import { Retry, RetryBudget, TimeoutError, type RetryOptions } from '@trellis/resilience';
import { configField, get, instances } from '../fixtures.js';

const post: Call = { ...get, method: 'POST', body: { name: 'Ada' } };

interface Seen {
  readonly at: number;
  readonly avoid: string[];
}

/**
 * A downstream standing for ServiceClient's attempt: picks the first instance not avoided and
 * answers with the next scripted outcome.
 */
function downstream(clock: ManualClock, script: Array<number | ((instance: ServiceInstance) => unknown)>) {
  const seen: Seen[] = [];
  const send = async (_call: Call, context: CallContext): Promise<Reply> => {
    seen.push({ at: clock.now(), avoid: [...(context.avoid ?? [])] });
    const instance = instances.find((i) => !context.avoid?.has(i.id));
    if (instance === undefined) throw new NoInstancesError('users', 'all avoided');
    const step = script.shift() ?? 200;
    if (typeof step === 'number') return { status: step, headers: {}, body: null, instance };
    throw step(instance);
  };
  return { send, seen };
}

function setUp(script: Parameters<typeof downstream>[1], options: RetryOptions = {}) {
  const clock = new ManualClock();
  const down = downstream(clock, script);
  const filter = new Retry({ clock, random: () => 0.5, budget: false, ...options });
  const send = over(filter, down.send);
  return { clock, send, seen: down.seen, filter };
}

/** The retry filter around `down`, called with a fresh context per call. */
function over(filter: Retry, down: (call: Call, context: CallContext) => Promise<Reply>) {
  const chain = compose([filter.filter], down);
  return (call: Call, init?: CallContextInit) => chain(call, new CallContext(init));
}

const refused = (i: ServiceInstance): ConnectionError =>
  new ConnectionError('users', i.id, false, new Error('connect ECONNREFUSED'));
const reset = (i: ServiceInstance): ConnectionError =>
  new ConnectionError('users', i.id, true, new Error('socket hang up'));

describe('retry', () => {
  it('retries a 503 on another instance each time, after backoffs with full jitter, and returns the last answer', async () => {
    const { clock, send, seen, filter } = setUp([503, 502, 504], { backoffBaseMs: 100, backoffMaxMs: 1_000 });
    const events: unknown[] = [];
    filter.onRetryScheduled((e) => events.push(e));
    const result = send(get);
    await clock.advanceAsync(1_000);
    expect((await result).status).toBe(504);
    // Full jitter draws in [0, cap): with random() = 0.5, waits of 50 then 100 ms.
    expect(seen).toEqual([
      { at: 0, avoid: [] },
      { at: 50, avoid: ['users-1'] },
      { at: 150, avoid: ['users-1', 'users-2'] },
    ]);
    expect(events).toEqual([
      { type: 'retry-scheduled', service: 'users', attempt: 1, instance: 'users-1', reason: 'HTTP 503', delayMs: 50 },
      { type: 'retry-scheduled', service: 'users', attempt: 2, instance: 'users-2', reason: 'HTTP 502', delayMs: 100 },
    ]);
  });

  it('returns the first good answer at once', async () => {
    const { clock, send, seen } = setUp([503, 200]);
    const result = send(get);
    await clock.advanceAsync(1_000);
    expect((await result).instance.id).toBe('users-2');
    expect(seen).toHaveLength(2);
  });

  it('caps each backoff at backoffMaxMs', async () => {
    const { clock, send, seen } = setUp([503, 503, 503, 503], {
      maxAttempts: 4,
      backoffBaseMs: 100,
      backoffMaxMs: 150,
      random: () => 0.999,
    });
    const result = send(get);
    await clock.advanceAsync(2_000);
    await result;
    // Caps 100, 150, 150. The fourth attempt finds all three instances avoided and starts over.
    expect(seen.map((s) => Math.round(s.at))).toEqual([0, 100, 250, 400, 400]);
    expect(seen[4]?.avoid).toEqual([]);
  });

  it('does not retry an answer or an error that is not retryable', async () => {
    const a = setUp([404]);
    expect((await a.send(get)).status).toBe(404);
    expect(a.seen).toHaveLength(1);
    const b = setUp([(i) => new UpstreamStatusError('users', i.id, 400, null)]);
    await expect(b.send(get)).rejects.toMatchObject({ status: 400 });
    expect(b.seen).toHaveLength(1);
    const c = setUp([() => new Error('a bug')]);
    await expect(c.send(get)).rejects.toThrow('a bug');
    expect(c.seen).toHaveLength(1);
  });

  it('retries a refused connection of any call at once, since the instance never saw it', async () => {
    const { send, seen } = setUp([refused, refused]);
    expect((await send(post)).instance.id).toBe('users-3');
    expect(seen.map((s) => s.at)).toEqual([0, 0, 0]);
  });

  it('retries a call that may have arrived only when it is idempotent or carries an Idempotency-Key', async () => {
    const a = setUp([reset]);
    await expect(a.send(post)).rejects.toMatchObject({ code: 'CONNECTION_FAILED', sent: true });
    expect(a.seen).toHaveLength(1);
    const b = setUp([503]);
    expect((await b.send(post)).status).toBe(503);
    expect(b.seen).toHaveLength(1);
    const c = setUp([reset]);
    const result = c.send({ ...post, headers: { 'Idempotency-Key': 'k-1' } });
    await c.clock.advanceAsync(100);
    expect((await result).status).toBe(200);
    const d = setUp([reset]);
    const put = d.send({ ...get, method: 'PUT' });
    await d.clock.advanceAsync(100);
    expect((await put).status).toBe(200);
  });

  it('retries an attempt timeout on another instance, and an open per-instance circuit at once', async () => {
    const circuitOpen = (i: ServiceInstance): TrellisError =>
      new TrellisError('CIRCUIT_OPEN', 'open', { retryable: true, instance: i.id });
    const { clock, send, seen } = setUp([(i) => new TimeoutError('attempt', 100, 'users', i.id), circuitOpen]);
    const result = send(get);
    await clock.advanceAsync(100);
    expect((await result).instance.id).toBe('users-3');
    expect(seen).toEqual([
      { at: 0, avoid: [] },
      { at: 12.5, avoid: ['users-1'] },
      { at: 12.5, avoid: ['users-1', 'users-2'] },
    ]);
  });

  it('tries the avoided instances again when none is left, rather than failing for want of a fresh one', async () => {
    const clock = new ManualClock();
    const only = instances[0] as ServiceInstance;
    const seen: string[][] = [];
    const send = over(new Retry({ clock, random: () => 0, budget: false }), async (_call, context): Promise<Reply> => {
      seen.push([...(context.avoid ?? [])]);
      if (context.avoid?.has(only.id)) throw new NoInstancesError('users', 'all avoided');
      return { status: seen.length === 1 ? 503 : 200, headers: {}, body: null, instance: only };
    });
    expect((await send(get)).status).toBe(200);
    expect(seen).toEqual([[], ['users-1'], []]);
  });

  it('stops when the budget is spent, returning the last answer', async () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ clock, ttlMs: 1_000, minRetriesPerSecond: 1, retryShare: 0 });
    const down = downstream(clock, [503, 503, 503, 503]);
    const filter = new Retry({ clock, random: () => 0, budget });
    const exhausted: unknown[] = [];
    filter.onRetryRefused((e) => exhausted.push(e));
    const send = over(filter, down.send);
    expect((await send(get)).status).toBe(503);
    expect(down.seen).toHaveLength(2); // one retry: the floor of 1 per second
    expect(exhausted).toEqual([{ type: 'retry-refused', service: 'users', attempt: 2, reason: 'budget' }]); // the second retry found it spent
    expect((await send(get)).status).toBe(503);
    expect(down.seen).toHaveLength(3); // budget spent: no retry
  });

  it('ends a backoff wait when the call is aborted, with the signal reason', async () => {
    const clock = new ManualClock();
    const down = downstream(clock, [503]);
    const send = over(
      new Retry({ clock, random: () => 0.9, budget: false, backoffBaseMs: 1_000, backoffMaxMs: 1_000 }),
      down.send,
    );
    const caller = new AbortController();
    const result = send(get, { signal: caller.signal }).catch((e: unknown) => e);
    await clock.advanceAsync(100);
    caller.abort(new Error('caller left'));
    expect(await result).toEqual(new Error('caller left'));
    await clock.advanceAsync(5_000);
    expect(down.seen).toHaveLength(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('stops after maxAttempts, throwing the last error', async () => {
    const { clock, send, seen } = setUp([reset, reset, reset, reset], { maxAttempts: 2 });
    const result = send(get).catch((e: unknown) => e);
    await clock.advanceAsync(1_000);
    expect(await result).toMatchObject({ code: 'CONNECTION_FAILED', instance: 'users-2' });
    expect(seen).toHaveLength(2);
  });

  it('rejects options out of range, naming the field', () => {
    expect(configField(() => new Retry({ maxAttempts: 0 }))).toBe('retry.maxAttempts');
    expect(configField(() => new Retry({ backoffBaseMs: -1 }))).toBe('retry.backoffBaseMs');
    expect(configField(() => new Retry({ backoffBaseMs: 100, backoffMaxMs: 10 }))).toBe('retry.backoffMaxMs');
  });

  it('turns off for a call made with retry: false, and trusts a per-call idempotent: true for a POST', async () => {
    const a = setUp([503, 200]);
    expect((await a.send(get, { retry: false })).status).toBe(503);
    expect(a.seen).toHaveLength(1);
    const b = setUp([reset]);
    const result = b.send(post, { idempotent: true });
    await b.clock.advanceAsync(100);
    expect((await result).status).toBe(200);
    expect(b.seen).toHaveLength(2);
  });

  it('retries any async function with execute(), handing it the signal, and gives up on a non-retryable Trellis error', async () => {
    const clock = new ManualClock();
    const retry = new Retry({ clock, random: () => 0.5, budget: false, service: 'orders-db', maxAttempts: 3 });
    const events: unknown[] = [];
    retry.onRetryScheduled((e) => events.push(e));
    const caller = new AbortController();
    const signals: AbortSignal[] = [];
    let runs = 0;
    const result = retry.execute(async (signal) => {
      signals.push(signal);
      if (++runs < 3) throw new Error('deadlock detected');
      return 'rows';
    }, caller.signal);
    await clock.advanceAsync(1_000);
    expect(await result).toBe('rows');
    expect(signals).toEqual([caller.signal, caller.signal, caller.signal]);
    expect(events).toEqual([
      {
        type: 'retry-scheduled',
        service: 'orders-db',
        attempt: 1,
        instance: undefined,
        reason: 'Error',
        delayMs: 12.5,
      },
      { type: 'retry-scheduled', service: 'orders-db', attempt: 2, instance: undefined, reason: 'Error', delayMs: 25 },
    ]);
    let tries = 0;
    await expect(
      retry.execute(async () => {
        tries++;
        throw new UpstreamStatusError('orders-db', 'db-1', 400, null);
      }),
    ).rejects.toMatchObject({ status: 400 });
    expect(tries).toBe(1);
  });
});
