import {
  CallContext,
  ConfigError,
  Emitter,
  systemClock,
  type Clock,
  type Event,
  type Filter,
  type Reply,
  type Stage,
  type StageEnv,
  type TimedOut,
  type Timer,
} from '@trellis/core';
import { DeadlineQueue, type DeadlineEntry } from '../shared/deadline-queue.js';
import { forward, neverAborted, type Policy } from '../shared/policy.js';
import { TimeoutError } from './timeout-error.js';

export interface TimeoutOptions {
  /** The time limit; `false` for none (the stage passes attempts through until {@link Timeout.update} sets one). */
  readonly timeoutMs: number | false;
  /** What {@link Timeout.execute}'s errors and events name as the service; default "execute". */
  readonly service?: string;
  /** Default the system clock (a client hands its own). */
  readonly clock?: Clock;
}

/**
 * Checks a time limit: a positive, finite number of milliseconds.
 * @throws ConfigError naming `field`.
 * @example
 * checkTimeoutMs(500, 'attemptTimeoutMs');
 */
export function checkTimeoutMs(timeoutMs: number, field = 'timeoutMs'): void {
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new ConfigError(field, `must be a positive number of milliseconds, got ${timeoutMs}`);
  }
}

/**
 * A per-attempt time limit: an attempt that has not settled after `timeoutMs` is cancelled
 * through its context's signal and fails with a retryable {@link TimeoutError}, so that the
 * retry stage can try another instance. A ServiceClient has one, named "attempt-timeout"
 * (10 s by default).
 *
 * Cheap on the hot path: no timer per call (one clock timer for the oldest call in flight) and
 * no AbortSignal unless something below reads `context.signal` (the transport does).
 *
 * @throws ConfigError for a `timeoutMs` that is not a positive number.
 * @example
 * const users = new ServiceClient({ service: 'users', discovery, attemptTimeoutMs: 500 });
 * const timeout = new Timeout({ timeoutMs: 200, service: 'orders-db' });
 * const rows = await timeout.execute((signal) => db.query('select 1', { signal }));
 */
export class Timeout implements Stage, Policy {
  readonly name = 'attempt-timeout';
  readonly role = 'timeout';
  #timeoutMs: number | false;
  readonly #clock: Clock;
  readonly #service: string;
  #queue: DeadlineQueue<Pending>;
  readonly #timedOut = new Emitter<TimedOut>();
  /** A call ran out of time (emitted before the caller sees the error). */
  readonly onTimedOut: Event<TimedOut> = this.#timedOut.event;

  constructor(options: TimeoutOptions) {
    const timeoutMs = options.timeoutMs;
    if (timeoutMs !== false) checkTimeoutMs(timeoutMs);
    this.#timeoutMs = timeoutMs;
    this.#clock = options.clock ?? systemClock;
    this.#service = options.service ?? 'execute';
    this.#queue = new DeadlineQueue<Pending>(this.#clock);
  }

  /** The time limit in force; `false` for none. */
  get timeoutMs(): number | false {
    return this.#timeoutMs;
  }

  /**
   * Changes the limit for attempts that start from now on; `false` for none. Attempts in flight
   * keep the limit they started with.
   * @throws ConfigError for a limit that is not a positive number; nothing changes then.
   * @example
   * const timeout = new Timeout({ timeoutMs: 10_000 });
   * timeout.update(500);
   */
  update(timeoutMs: number | false): void {
    if (timeoutMs !== false) checkTimeoutMs(timeoutMs);
    if (timeoutMs === this.#timeoutMs) return;
    this.#timeoutMs = timeoutMs;
    // The queue relies on one delay for all: attempts from now on queue apart from the older ones.
    this.#queue = new DeadlineQueue<Pending>(this.#clock);
  }

  make(env: StageEnv): Filter {
    forward(env, this.onTimedOut);
    return this.filter;
  }

  /** The HTTP filter, for a stack of your own. */
  readonly filter: Filter = (call, context, next) => {
    const timeoutMs = this.#timeoutMs;
    if (timeoutMs === false) return next(call, context);
    const child = context.forkCancellable();
    return this.#run(timeoutMs, call.service, context.instance?.id, child, () => next(call, child));
  };

  /**
   * Runs `fn` with a signal that aborts after `timeoutMs` (or when `signal` does).
   * @throws TimeoutError when the time runs out first; what `fn` throws otherwise.
   */
  execute<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const timeoutMs = this.#timeoutMs;
    if (timeoutMs === false) return fn(signal ?? neverAborted);
    const child = new CallContext(signal === undefined ? {} : { signal }).forkCancellable();
    return this.#run(timeoutMs, this.#service, undefined, child, () => fn(child.signal as AbortSignal));
  }

  #run<T>(
    timeoutMs: number,
    service: string,
    instance: string | undefined,
    child: CallContext,
    start: () => Promise<T>,
  ): Promise<T> {
    const queue = this.#queue;
    return new Promise<T>((resolve, reject) => {
      const pending = new Pending(
        this,
        queue,
        this.#clock.now() + timeoutMs,
        timeoutMs,
        service,
        instance,
        child,
        reject as (error: unknown) => void,
      );
      queue.add(pending);
      let sent: Promise<T>;
      try {
        sent = start();
      } catch (error) {
        sent = Promise.reject(error);
      }
      sent.then(
        (value) => {
          if (pending.settle()) resolve(value);
        },
        (error: unknown) => {
          if (pending.settle()) reject(error);
        },
      );
    });
  }

  /** @internal */
  report(error: TimeoutError): void {
    if (this.#timedOut.hasListeners) {
      this.#timedOut.emit({
        type: 'timed-out',
        service: error.service ?? this.#service,
        instance: error.instance,
        scope: error.scope,
        timeoutMs: error.timeoutMs,
      });
    }
  }
}

/** One call in flight under a time limit: a node of the queue. */
class Pending implements DeadlineEntry {
  readonly deadline: number;
  prev: DeadlineEntry | undefined;
  next: DeadlineEntry | undefined;
  readonly #owner: Timeout;
  readonly #queue: DeadlineQueue<Pending>;
  readonly #timeoutMs: number;
  readonly #service: string;
  readonly #instance: string | undefined;
  readonly #child: CallContext;
  readonly #reject: (error: unknown) => void;
  #done = false;

  constructor(
    owner: Timeout,
    queue: DeadlineQueue<Pending>,
    deadline: number,
    timeoutMs: number,
    service: string,
    instance: string | undefined,
    child: CallContext,
    reject: (error: unknown) => void,
  ) {
    this.#owner = owner;
    this.#queue = queue;
    this.deadline = deadline;
    this.#timeoutMs = timeoutMs;
    this.#service = service;
    this.#instance = instance;
    this.#child = child;
    this.#reject = reject;
  }

  /** The call settled by itself: true if it was in time (its outcome stands). */
  settle(): boolean {
    if (this.#done) return false;
    this.#done = true;
    this.#queue.remove(this);
    this.#child.detach();
    return true;
  }

  /** Time is up (the queue has unlinked this node already). */
  expire(): void {
    if (this.#done) return;
    this.#done = true;
    const error = new TimeoutError('attempt', this.#timeoutMs, this.#service, this.#instance);
    this.#child.cancel(error);
    this.#owner.report(error);
    this.#reject(error);
  }
}

export interface DeadlineOptions {
  /** A limit for every call of the stack, from when it starts; default none (only the calls' own deadlines). */
  readonly timeoutMs?: number;
}

/**
 * The stage that holds a call to its deadline, retries and backoffs included: the earlier of
 * the call's own (per-call `timeoutMs`, or the remaining time of the inbound request it is made
 * for) and `timeoutMs` from when it starts. When the deadline passes, whatever is in flight is
 * cancelled, no further attempt starts, and the call fails with a non-retryable
 * {@link TimeoutError} (`scope: 'deadline'`). A call with no deadline passes straight through.
 * A ServiceClient has one, named "deadline".
 *
 * @throws ConfigError for a `timeoutMs` that is not a positive number.
 * @example
 * const users = new ServiceClient({ service: 'users', discovery, deadlineMs: 2_000 });
 */
export function deadline(options: DeadlineOptions = {}): Deadline {
  return new Deadline(options);
}

/**
 * The "deadline" stage, as {@link deadline} makes it, whose limit can change while calls run.
 * @throws ConfigError for a `timeoutMs` that is not a positive number.
 * @example
 * const stage = deadline({ timeoutMs: 2_000 });
 * stage.update(false); // calls keep only their own deadlines
 */
export class Deadline implements Stage {
  readonly name = 'deadline';
  readonly role = 'deadline';
  readonly level = 'call';
  #timeoutMs: number | undefined;

  constructor(options: DeadlineOptions = {}) {
    if (options.timeoutMs !== undefined) checkTimeoutMs(options.timeoutMs, 'deadlineMs');
    this.#timeoutMs = options.timeoutMs;
  }

  /** The limit for every call, from when it starts; `false` for none. */
  get timeoutMs(): number | false {
    return this.#timeoutMs ?? false;
  }

  /**
   * Changes the limit for the calls that start from now on; `false` for none. Calls in flight
   * keep the deadline they started with.
   * @throws ConfigError for a limit that is not a positive number; nothing changes then.
   */
  update(timeoutMs: number | false): void {
    if (timeoutMs !== false) checkTimeoutMs(timeoutMs, 'deadlineMs');
    this.#timeoutMs = timeoutMs === false ? undefined : timeoutMs;
  }

  make(env: StageEnv): Filter {
    const { clock, telemetry } = env;
    const filter: Filter = (call, context, next) => {
      const timeoutMs = this.#timeoutMs;
      if (timeoutMs === undefined && context.deadline === undefined) return next(call, context);
      const now = clock.now();
      const own = timeoutMs === undefined ? undefined : now + timeoutMs;
      const due =
        context.deadline === undefined ? own : own === undefined ? context.deadline : Math.min(own, context.deadline);
      if (due === undefined) return next(call, context);
      const limitMs = Math.max(0, Math.round(due - now));
      const expired = (): TimeoutError => {
        const error = new TimeoutError('deadline', limitMs, call.service);
        if (telemetry.enabled) {
          telemetry.emit({
            type: 'timed-out',
            service: call.service,
            instance: undefined,
            scope: 'deadline',
            timeoutMs: limitMs,
          });
        }
        return error;
      };
      // Nothing starts once the time is up (an inbound request that arrived with none left).
      if (due <= now) return Promise.reject(expired());
      const child = context.forkCancellable();
      child.deadline = due;
      return new Promise<Reply>((resolve, reject) => {
        let done = false;
        // A per-call timer: deadlines of different calls come in any order (each inbound
        // request brings its own), so one queue for all does not fit.
        const timer: Timer = clock.setTimer(due - now, () => {
          if (done) return;
          done = true;
          const error = expired();
          child.cancel(error);
          reject(error);
        });
        const settle = (): boolean => {
          if (done) return false;
          done = true;
          timer.cancel();
          child.detach();
          return true;
        };
        let sent: Promise<Reply>;
        try {
          sent = next(call, child);
        } catch (error) {
          sent = Promise.reject(error);
        }
        sent.then(
          (reply) => {
            if (settle()) resolve(reply);
          },
          (error: unknown) => {
            if (settle()) reject(error);
          },
        );
      });
    };
    return filter;
  }
}
