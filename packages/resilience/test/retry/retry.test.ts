import {
  compose,
  ConnectionError,
  ManualClock,
  NoInstancesError,
  TrellisError,
  UpstreamStatusError,
  type Call,
  type Reply,
  type ServiceInstance,
} from '@trellis/core';
import { retry, RetryBudget, TimeoutError, type RetryOptions } from '@trellis/resilience';
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
  const send = async (call: Call): Promise<Reply> => {
    seen.push({ at: clock.now(), avoid: [...(call.avoid ?? [])] });
    const instance = instances.find((i) => !call.avoid?.has(i.id));
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
  const filter = retry({ clock, random: () => 0.5, budget: false, ...options });
  const send = compose([filter], down.send);
  return { clock, send, seen: down.seen, filter };
}

const refused = (i: ServiceInstance): ConnectionError =>
  new ConnectionError('users', i.id, false, new Error('connect ECONNREFUSED'));
const reset = (i: ServiceInstance): ConnectionError =>
  new ConnectionError('users', i.id, true, new Error('socket hang up'));

describe('retry', () => {
  it('retries a 503 on another instance each time, after backoffs with full jitter, and returns the last answer', async () => {
    const { clock, send, seen, filter } = setUp([503, 502, 504], { baseDelayMs: 100, maxDelayMs: 1_000 });
    const events: unknown[] = [];
    filter.onRetry((e) => events.push(e));
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
      { service: 'users', attempt: 1, instance: 'users-1', reason: 'HTTP 503', delayMs: 50 },
      { service: 'users', attempt: 2, instance: 'users-2', reason: 'HTTP 502', delayMs: 100 },
    ]);
  });

  it('returns the first good answer at once', async () => {
    const { clock, send, seen } = setUp([503, 200]);
    const result = send(get);
    await clock.advanceAsync(1_000);
    expect((await result).instance.id).toBe('users-2');
    expect(seen).toHaveLength(2);
  });

  it('caps each backoff at maxDelayMs', async () => {
    const { clock, send, seen } = setUp([503, 503, 503, 503], {
      maxAttempts: 4,
      baseDelayMs: 100,
      maxDelayMs: 150,
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
    const send = compose([retry({ clock, random: () => 0, budget: false })], async (call: Call): Promise<Reply> => {
      seen.push([...(call.avoid ?? [])]);
      if (call.avoid?.has(only.id)) throw new NoInstancesError('users', 'all avoided');
      return { status: seen.length === 1 ? 503 : 200, headers: {}, body: null, instance: only };
    });
    expect((await send(get)).status).toBe(200);
    expect(seen).toEqual([[], ['users-1'], []]);
  });

  it('stops when the budget is spent, returning the last answer', async () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ clock, ttlMs: 1_000, minRetriesPerSecond: 1, percentCanRetry: 0 });
    const down = downstream(clock, [503, 503, 503, 503]);
    const filter = retry({ clock, random: () => 0, budget });
    const exhausted: unknown[] = [];
    filter.onBudgetExhausted((e) => exhausted.push(e));
    const send = compose([filter], down.send);
    expect((await send(get)).status).toBe(503);
    expect(down.seen).toHaveLength(2); // one retry: the floor of 1 per second
    expect(exhausted).toEqual([{ service: 'users', attempt: 2 }]); // the second retry found it spent
    expect((await send(get)).status).toBe(503);
    expect(down.seen).toHaveLength(3); // budget spent: no retry
  });

  it('ends a backoff wait when the call is aborted, with the signal reason', async () => {
    const clock = new ManualClock();
    const down = downstream(clock, [503]);
    const send = compose(
      [retry({ clock, random: () => 0.9, budget: false, baseDelayMs: 1_000, maxDelayMs: 1_000 })],
      down.send,
    );
    const caller = new AbortController();
    const result = send({ ...get, signal: caller.signal }).catch((e: unknown) => e);
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
    expect(configField(() => retry({ maxAttempts: 0 }))).toBe('maxAttempts');
    expect(configField(() => retry({ baseDelayMs: -1 }))).toBe('baseDelayMs');
    expect(configField(() => retry({ baseDelayMs: 100, maxDelayMs: 10 }))).toBe('maxDelayMs');
  });
});
