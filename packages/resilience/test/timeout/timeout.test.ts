import { compose, ManualClock, type Attempt, type Call, type Reply, type ServiceInstance } from '@trellis/core';
import { attemptTimeout, deadline, retry, TimeoutError, withCall } from '@trellis/resilience';
import { configField } from '../fixtures.js';

const instance: ServiceInstance = {
  id: 'users-1',
  service: 'users',
  address: '127.0.0.1',
  port: 1,
  tags: [],
  meta: { weight: 1, labels: {} },
};
const attempt = (signal?: AbortSignal): Attempt => ({
  service: 'users',
  method: 'GET',
  path: '/users/1',
  headers: {},
  instance,
  ...(signal === undefined ? {} : { signal }),
});
const ok: Reply = { status: 200, headers: {}, body: 'ok', instance };

/** A downstream that answers only when told to, and records what it was sent. */
function held(): { send: (a: Attempt) => Promise<Reply>; seen: Attempt[]; answer: (r?: Reply) => void } {
  const seen: Attempt[] = [];
  const resolvers: Array<(r: Reply) => void> = [];
  return {
    seen,
    send: (a) => {
      seen.push(a);
      return new Promise((resolve) => resolvers.push(resolve));
    },
    answer: (r = ok) => resolvers.shift()?.(r),
  };
}

describe('attemptTimeout', () => {
  it('fails an attempt that outlasts the limit with a retryable TIMEOUT naming the instance', async () => {
    const clock = new ManualClock();
    const down = held();
    const filter = attemptTimeout({ timeoutMs: 100, clock });
    const events: unknown[] = [];
    filter.onTimeout((e) => events.push(e));
    const send = compose([filter], down.send);
    const result = send(attempt()).catch((e: unknown) => e);
    clock.advance(99);
    expect(events).toHaveLength(0);
    clock.advance(1);
    const error = await result;
    expect(events).toEqual([error]);
    expect(TimeoutError.is(error)).toBe(true);
    expect(error).toMatchObject({
      code: 'TIMEOUT',
      scope: 'attempt',
      retryable: true,
      instance: 'users-1',
      timeoutMs: 100,
    });
  });

  it('cancels the attempt through its signal, with the TIMEOUT error as the reason', async () => {
    const clock = new ManualClock();
    const down = held();
    const send = compose([attemptTimeout({ timeoutMs: 50, clock })], down.send);
    const result = send(attempt()).catch((e: unknown) => e);
    const signal = down.seen[0]?.signal;
    expect(signal?.aborted).toBe(false);
    clock.advance(50);
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBe(await result);
    // A signal first read after the timeout is already aborted.
    expect(down.seen[0]?.signal?.aborted).toBe(true);
  });

  it('passes an answer in time through, and a later tick changes nothing', async () => {
    const clock = new ManualClock();
    const down = held();
    const send = compose([attemptTimeout({ timeoutMs: 100, clock })], down.send);
    const result = send(attempt());
    clock.advance(60);
    down.answer();
    expect(await result).toBe(ok);
    clock.advance(1_000);
    expect(down.seen[0]?.signal?.aborted).toBe(false);
  });

  it('passes a failure in time through unchanged', async () => {
    const clock = new ManualClock();
    const send = compose([attemptTimeout({ timeoutMs: 100, clock })], () => Promise.reject(new Error('refused')));
    await expect(send(attempt())).rejects.toThrow('refused');
  });

  it('follows the call’s own signal: aborting it aborts the attempt’s signal', async () => {
    const clock = new ManualClock();
    const down = held();
    const caller = new AbortController();
    const send = compose([attemptTimeout({ timeoutMs: 100, clock })], down.send);
    void send(attempt(caller.signal)).catch(() => undefined);
    const signal = down.seen[0]?.signal;
    caller.abort(new Error('user left'));
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toEqual(new Error('user left'));
  });

  it('serves any number of calls in flight with one clock timer, and times each out at its own deadline', async () => {
    const clock = new ManualClock();
    const down = held();
    const send = compose([attemptTimeout({ timeoutMs: 100, clock })], down.send);
    const outcomes: unknown[] = [];
    for (let i = 0; i < 50; i++) {
      send(attempt()).then(
        (reply) => (outcomes[i] = reply),
        (error: unknown) => (outcomes[i] = error),
      );
      clock.advance(1);
    }
    expect(clock.pendingTimers).toBe(1);
    down.answer(); // the call started at 0 settles in time, at 50
    await new Promise((resolve) => setImmediate(resolve));
    clock.advance(75); // now 125: the calls started at 1 to 25 are due, the one at 26 not yet
    await new Promise((resolve) => setImmediate(resolve));
    expect(outcomes[0]).toBe(ok);
    expect(outcomes.slice(1, 26).every((e) => TimeoutError.is(e))).toBe(true);
    expect(outcomes.length).toBe(26);
    clock.advance(100);
    await new Promise((resolve) => setImmediate(resolve));
    expect(outcomes.length).toBe(50);
    expect(clock.pendingTimers).toBe(0);
  });

  it('rejects a timeout that is not a positive number, naming the field', () => {
    expect(configField(() => attemptTimeout(0))).toBe('timeoutMs');
    expect(configField(() => deadline(Number.NaN))).toBe('timeoutMs');
  });
});

describe('deadline', () => {
  const call: Call = { service: 'users', method: 'GET', path: '/users/1', headers: {} };

  it('bounds the whole call, backoff waits included, and ends the retries with a non-retryable TIMEOUT', async () => {
    const clock = new ManualClock();
    let attempts = 0;
    const send = compose(
      [
        deadline({ timeoutMs: 300, clock }),
        retry({ clock, random: () => 0.99, baseDelayMs: 200, maxDelayMs: 200, budget: false, maxAttempts: 5 }),
      ],
      async () => {
        attempts++;
        return { ...ok, status: 503 };
      },
    );
    const result = send(call).catch((e: unknown) => e);
    await clock.advanceAsync(198); // first attempt at 0, backoff of 198 ms, second attempt at 198
    expect(attempts).toBe(2);
    await clock.advanceAsync(102);
    const error = await result;
    expect(error).toMatchObject({ code: 'TIMEOUT', scope: 'deadline', retryable: false });
    await clock.advanceAsync(1_000);
    expect(attempts).toBe(2);
  });

  it('keeps its signal through withCall copies below it, so the transport can be cancelled', async () => {
    const clock = new ManualClock();
    let seen: AbortSignal | undefined;
    const send = compose(
      [deadline({ timeoutMs: 100, clock }), (c, next) => next(withCall(c, { avoid: new Set(['x']) }))],
      (c: Call) => {
        seen = c.signal;
        expect(c.avoid?.has('x')).toBe(true);
        return new Promise<Reply>(() => undefined);
      },
    );
    const result = send(call).catch((e: unknown) => e);
    clock.advance(100);
    expect(TimeoutError.is(await result)).toBe(true);
    expect(seen?.aborted).toBe(true);
  });

  it('gives an inner attempt timeout the deadline as its parent signal', async () => {
    const clock = new ManualClock();
    let seen: AbortSignal | undefined;
    const inner = attemptTimeout({ timeoutMs: 1_000, clock });
    const send = compose([deadline({ timeoutMs: 100, clock })], (c: Call) =>
      inner(withCall(c, { instance }) as Attempt, (a) => {
        seen = a.signal;
        return new Promise<Reply>(() => undefined);
      }),
    );
    const result = send(call).catch((e: unknown) => e);
    clock.advance(100);
    expect(await result).toMatchObject({ scope: 'deadline' });
    expect(seen?.aborted).toBe(true);
    expect(seen?.reason).toMatchObject({ scope: 'deadline' });
  });
});
