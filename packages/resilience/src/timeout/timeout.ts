import {
  ConfigError,
  Emitter,
  systemClock,
  type Attempt,
  type Call,
  type Clock,
  type Event,
  type Filter,
  type Reply,
  type ServiceInstance,
} from '@trellis/core';
import { DeadlineQueue, type DeadlineEntry } from '../shared/deadline-queue.js';
import { ChildSignal, LazySignalCall, type SignalSource } from '../shared/lazy-signal-call.js';
import { TimeoutError, type TimeoutScope } from './timeout-error.js';

/** A timeout filter, with an event for metrics and logs. */
export interface TimeoutFilter<C extends Call> extends Filter<C, Reply> {
  /** A call ran out of time (emitted before the caller sees the error). */
  readonly onTimeout: Event<TimeoutError>;
}

export interface TimeoutOptions {
  /** The time limit. */
  readonly timeoutMs: number;
  readonly clock?: Clock;
}

/**
 * A per-attempt time limit (an attempt filter): an attempt that has not settled after
 * `timeoutMs` is cancelled through its signal and fails with a retryable {@link TimeoutError},
 * so that a retry outside can try another instance.
 *
 * Cheap on the hot path: no timer per call (one clock timer per filter, for the oldest call in
 * flight) and no AbortSignal unless something below reads `attempt.signal` (the transport does;
 * the signal then also follows the call's own signal).
 *
 * @throws ConfigError for a `timeoutMs` that is not a positive number.
 * @example
 * new ServiceClient({ service: 'users', discovery, attemptFilters: [attemptTimeout(500)] });
 */
export function attemptTimeout(options: number | TimeoutOptions): TimeoutFilter<Attempt> {
  return timeoutFilter<Attempt>('attempt', options);
}

/**
 * An overall time limit for a call (a call filter, outside retry): when `timeoutMs` have passed
 * since the call began, across all its attempts and backoff waits, the call fails with a
 * non-retryable {@link TimeoutError} and whatever is in flight is cancelled through its signal.
 *
 * For the cancellation to reach the transport, filters below must copy the call with
 * `withCall()`, not a spread (a spread drops the lazily made signal).
 *
 * @throws ConfigError for a `timeoutMs` that is not a positive number.
 * @example
 * new ServiceClient({ service: 'users', discovery, filters: [deadline(2_000), retry()] });
 */
export function deadline(options: number | TimeoutOptions): TimeoutFilter<Call> {
  return timeoutFilter<Call>('deadline', options);
}

function timeoutFilter<C extends Call>(scope: TimeoutScope, options: number | TimeoutOptions): TimeoutFilter<C> {
  const { timeoutMs, clock = systemClock } = typeof options === 'number' ? { timeoutMs: options } : options;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new ConfigError('timeoutMs', `must be a positive number of milliseconds, got ${timeoutMs}`);
  }
  const queue = new DeadlineQueue<Pending>(clock);
  const timedOut = new Emitter<TimeoutError>();
  const filter: Filter<C, Reply> = (call, next) =>
    new Promise<Reply>((resolve, reject) => {
      const pending = new Pending(call, scope, timeoutMs, clock.now() + timeoutMs, reject, timedOut);
      queue.add(pending);
      let sent: Promise<Reply>;
      try {
        sent = next(new LazySignalCall(call, pending) as unknown as C);
      } catch (error) {
        sent = Promise.reject(error);
      }
      sent.then(
        (reply) => {
          if (pending.settle(queue)) resolve(reply);
        },
        (error: unknown) => {
          if (pending.settle(queue)) reject(error);
        },
      );
    });
  return Object.assign(filter, { onTimeout: timedOut.event });
}

/** One call in flight under a time limit: a node of the queue, and the source of its signal. */
class Pending implements SignalSource, DeadlineEntry {
  readonly deadline: number;
  prev: DeadlineEntry | undefined;
  next: DeadlineEntry | undefined;
  readonly #call: Call & { readonly instance?: ServiceInstance };
  readonly #scope: TimeoutScope;
  readonly #timeoutMs: number;
  readonly #reject: (error: unknown) => void;
  readonly #timedOut: Emitter<TimeoutError>;
  readonly #signal: ChildSignal;
  #done = false;

  constructor(
    call: Call,
    scope: TimeoutScope,
    timeoutMs: number,
    deadline: number,
    reject: (error: unknown) => void,
    timedOut: Emitter<TimeoutError>,
  ) {
    this.#call = call;
    this.#scope = scope;
    this.#timeoutMs = timeoutMs;
    this.deadline = deadline;
    this.#reject = reject;
    this.#timedOut = timedOut;
    // Only when read is the outer signal read, so an outer timeout's signal stays unmade as well.
    this.#signal = new ChildSignal(() => call.signal);
  }

  signal(): AbortSignal {
    return this.#signal.get();
  }

  /** The call settled by itself: true if it was in time (its outcome stands). */
  settle(queue: DeadlineQueue<Pending>): boolean {
    if (this.#done) return false;
    this.#done = true;
    queue.remove(this);
    this.#signal.detach();
    return true;
  }

  /** Time is up (the queue has unlinked this node already). */
  expire(): void {
    if (this.#done) return;
    this.#done = true;
    const error = new TimeoutError(this.#scope, this.#timeoutMs, this.#call.service, this.#call.instance?.id);
    this.#signal.cancel(error);
    this.#timedOut.emit(error);
    this.#reject(error);
  }
}
