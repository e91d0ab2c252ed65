import {
  CallContext,
  compose,
  ManualClock,
  Stack,
  Telemetry,
  type Call,
  type CallContextInit,
  type Reply,
  type ServiceInstance,
  type Stage,
  type TelemetryEvent,
} from '@trellis/core';
import { deadline, Retry, Timeout, TimeoutError } from '@trellis/resilience';
import { configField, instance as instanceOf } from '../fixtures.js';

const instance: ServiceInstance = instanceOf('users-1');
const call: Call = { service: 'users', method: 'GET', path: '/users/1', headers: {} };
const ok: Reply = { status: 200, headers: {}, body: 'ok', instance };

/** A context with its instance chosen, as the instance selection stage leaves it. */
function attempt(init?: CallContextInit): CallContext {
  const context = new CallContext(init);
  context.instance = instance;
  return context;
}

/** A downstream that answers only when told to, and records the contexts it was sent. */
function held(): {
  send: (c: Call, context: CallContext) => Promise<Reply>;
  seen: CallContext[];
  answer: (r?: Reply) => void;
} {
  const seen: CallContext[] = [];
  const resolvers: Array<(r: Reply) => void> = [];
  return {
    seen,
    send: (_c, context) => {
      seen.push(context);
      return new Promise((resolve) => resolvers.push(resolve));
    },
    answer: (r = ok) => resolvers.shift()?.(r),
  };
}

describe('Timeout', () => {
  it('fails an attempt that outlasts the limit with a retryable TIMEOUT naming the instance', async () => {
    const clock = new ManualClock();
    const down = held();
    const timeout = new Timeout({ timeoutMs: 100, clock });
    const events: unknown[] = [];
    timeout.onTimedOut((e) => events.push(e));
    const send = compose([timeout.filter], down.send);
    const result = send(call, attempt()).catch((e: unknown) => e);
    clock.advance(99);
    expect(events).toHaveLength(0);
    clock.advance(1);
    const error = await result;
    expect(events).toEqual([
      { type: 'timed-out', service: 'users', instance: 'users-1', scope: 'attempt', timeoutMs: 100 },
    ]);
    expect(TimeoutError.is(error)).toBe(true);
    expect(error).toMatchObject({
      code: 'TIMEOUT',
      scope: 'attempt',
      retryable: true,
      instance: 'users-1',
      timeoutMs: 100,
    });
  });

  it('cancels the attempt through its context’s signal, with the TIMEOUT error as the reason', async () => {
    const clock = new ManualClock();
    const down = held();
    const send = compose([new Timeout({ timeoutMs: 50, clock }).filter], down.send);
    const result = send(call, attempt()).catch((e: unknown) => e);
    const signal = down.seen[0]?.signal;
    expect(signal?.aborted).toBe(false);
    clock.advance(50);
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBe(await result);
  });

  it('still cancels the request when a filter below copies the call with a spread', async () => {
    const clock = new ManualClock();
    const down = held();
    const send = compose(
      [
        new Timeout({ timeoutMs: 50, clock }).filter,
        (c, context, next) => next({ ...c, headers: { ...c.headers, 'x-caller': 'forum' } }, context),
      ],
      down.send,
    );
    const result = send(call, attempt()).catch((e: unknown) => e);
    clock.advance(50);
    expect(TimeoutError.is(await result)).toBe(true);
    // A signal first read after the timeout is already aborted.
    expect(down.seen[0]?.signal?.aborted).toBe(true);
  });

  it('passes an answer in time through, and a later tick changes nothing', async () => {
    const clock = new ManualClock();
    const down = held();
    const send = compose([new Timeout({ timeoutMs: 100, clock }).filter], down.send);
    const result = send(call, attempt());
    clock.advance(60);
    down.answer();
    expect(await result).toBe(ok);
    clock.advance(1_000);
    expect(down.seen[0]?.signal?.aborted).toBe(false);
  });

  it('passes a failure in time through unchanged', async () => {
    const clock = new ManualClock();
    const send = compose([new Timeout({ timeoutMs: 100, clock }).filter], () => Promise.reject(new Error('refused')));
    await expect(send(call, attempt())).rejects.toThrow('refused');
  });

  it('follows the call’s own signal: aborting it aborts the attempt’s signal', async () => {
    const clock = new ManualClock();
    const down = held();
    const caller = new AbortController();
    const send = compose([new Timeout({ timeoutMs: 100, clock }).filter], down.send);
    void send(call, attempt({ signal: caller.signal })).catch(() => undefined);
    const signal = down.seen[0]?.signal;
    caller.abort(new Error('user left'));
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toEqual(new Error('user left'));
  });

  it('serves any number of calls in flight with one clock timer, and times each out at its own deadline', async () => {
    const clock = new ManualClock();
    const down = held();
    const send = compose([new Timeout({ timeoutMs: 100, clock }).filter], down.send);
    const outcomes: unknown[] = [];
    for (let i = 0; i < 50; i++) {
      send(call, attempt()).then(
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

  it('bounds any async function with execute(), aborting the signal it handed over', async () => {
    const clock = new ManualClock();
    const timeout = new Timeout({ timeoutMs: 200, clock, service: 'orders-db' });
    let seen: AbortSignal | undefined;
    const result = timeout
      .execute((signal) => {
        seen = signal;
        return new Promise<string>(() => undefined);
      })
      .catch((e: unknown) => e);
    clock.advance(200);
    expect(await result).toMatchObject({ code: 'TIMEOUT', service: 'orders-db', timeoutMs: 200 });
    expect(seen?.aborted).toBe(true);
    await expect(timeout.execute(async () => 'rows')).resolves.toBe('rows');
  });

  it('rejects a timeout that is not a positive number, naming the field', () => {
    expect(configField(() => new Timeout({ timeoutMs: 0 }))).toBe('timeoutMs');
    expect(configField(() => deadline({ timeoutMs: Number.NaN }))).toBe('deadlineMs');
  });
});

describe('deadline', () => {
  /** A stack of `stages` over `send`, built as a ServiceClient builds its own. */
  function stackOf(clock: ManualClock, stages: Stage[], send: (c: Call, context: CallContext) => Promise<Reply>) {
    const telemetry = new Telemetry();
    const events: TelemetryEvent[] = [];
    telemetry.onEvent((e) => events.push(e));
    const service = new Stack([...stages, { name: 'transport', role: 'transport', make: () => send }]).build({
      service: 'users',
      clock,
      random: () => 0.5,
      telemetry,
    });
    return { send: (init?: CallContextInit) => service(call, attempt(init)), events };
  }

  it('bounds the whole call, backoff waits included, and ends the retries with a non-retryable TIMEOUT', async () => {
    const clock = new ManualClock();
    let attempts = 0;
    const { send, events } = stackOf(
      clock,
      [
        deadline({ timeoutMs: 300 }),
        new Retry({ clock, random: () => 0.99, backoffBaseMs: 200, backoffMaxMs: 200, budget: false, maxAttempts: 5 }),
      ],
      async () => {
        attempts++;
        return { ...ok, status: 503 };
      },
    );
    const result = send().catch((e: unknown) => e);
    await clock.advanceAsync(198); // first attempt at 0, backoff of 198 ms, second attempt at 198
    expect(attempts).toBe(2);
    await clock.advanceAsync(102);
    const error = await result;
    expect(error).toMatchObject({ code: 'TIMEOUT', scope: 'deadline', retryable: false });
    expect(events.filter((e) => e.type === 'timed-out')).toEqual([
      { type: 'timed-out', service: 'users', instance: undefined, scope: 'deadline', timeoutMs: 300 },
    ]);
    await clock.advanceAsync(1_000);
    expect(attempts).toBe(2);
  });

  it('holds a call to its own deadline (per call, or inherited), the earlier of it and the stage’s limit', async () => {
    const clock = new ManualClock();
    const seen: CallContext[] = [];
    const { send } = stackOf(clock, [deadline({ timeoutMs: 1_000 })], (_c, context) => {
      seen.push(context);
      return new Promise<Reply>(() => undefined);
    });
    const result = send({ deadline: 150 }).catch((e: unknown) => e);
    expect(seen[0]?.deadline).toBe(150);
    clock.advance(150);
    expect(await result).toMatchObject({ scope: 'deadline', timeoutMs: 150 });
    expect(seen[0]?.signal?.aborted).toBe(true);
    // A call whose deadline has passed already never starts.
    await expect(send({ deadline: clock.now() })).rejects.toMatchObject({ scope: 'deadline' });
    expect(seen).toHaveLength(1);
  });

  it('lets a call with no deadline through untouched when the stage has no limit of its own', async () => {
    const clock = new ManualClock();
    const { send } = stackOf(clock, [deadline()], async () => ok);
    await expect(send()).resolves.toBe(ok);
    expect(clock.pendingTimers).toBe(0);
  });

  it('gives an inner attempt timeout the deadline as its parent signal', async () => {
    const clock = new ManualClock();
    let seen: AbortSignal | undefined;
    const { send } = stackOf(
      clock,
      [deadline({ timeoutMs: 100 }), new Timeout({ timeoutMs: 1_000, clock })],
      (_c, context) => {
        seen = context.signal;
        return new Promise<Reply>(() => undefined);
      },
    );
    const result = send().catch((e: unknown) => e);
    clock.advance(100);
    expect(await result).toMatchObject({ scope: 'deadline' });
    expect(seen?.aborted).toBe(true);
    expect(seen?.reason).toMatchObject({ scope: 'deadline' });
  });
});
