import { ConfigError, systemClock, type Clock, type Timer } from '@trellis/core';
import { granted, refused, type Decision } from '../shared/decision.js';
import { BulkheadFullError } from './bulkhead-full-error.js';

export interface ConcurrencyLimitOptions {
  /** Calls allowed in flight at once. */
  readonly maxConcurrent: number;
  /** Calls that may wait for a slot, first come first served; default 0 (refuse at once). */
  readonly maxQueue?: number;
  /** Longest wait in the queue before the call is refused; default 1 000 ms. */
  readonly queueTimeoutMs?: number;
  /** Names the limit in errors, e.g. "users"; default "concurrency". */
  readonly name?: string;
  readonly clock?: Clock;
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
  readonly signal: AbortSignal | undefined;
  timer: Timer | undefined;
  onAbort: (() => void) | undefined;
  prev: Waiter | undefined;
  next: Waiter | undefined;
}

/**
 * A bulkhead: at most `maxConcurrent` calls in flight, and a bounded FIFO queue of calls waiting
 * for a slot, each for at most `queueTimeoutMs`. Keeps one failing dependency from holding every
 * socket and every request of the process.
 *
 * The low-level protocol: `tryAcquire()` (a {@link Decision}, as a rate limiter's) or `await
 * acquire()`, then exactly one `release()` per slot obtained, when the call ends whichever way.
 *
 * @throws ConfigError from the constructor for a limit, queue size or timeout out of range.
 * @example
 * const limit = new ConcurrencyLimit({ maxConcurrent: 10, maxQueue: 50, queueTimeoutMs: 200 });
 * await limit.acquire(signal); // throws BulkheadFullError when full
 * try { return await send(); } finally { limit.release(); }
 */
export class ConcurrencyLimit {
  readonly maxConcurrent: number;
  readonly maxQueue: number;
  readonly queueTimeoutMs: number;
  readonly name: string;
  readonly #clock: Clock;
  #active = 0;
  #queued = 0;
  #head: Waiter | undefined;
  #tail: Waiter | undefined;

  constructor(options: ConcurrencyLimitOptions) {
    const { maxConcurrent } = options;
    const maxQueue = options.maxQueue ?? 0;
    const queueTimeoutMs = options.queueTimeoutMs ?? 1_000;
    if (!(Number.isInteger(maxConcurrent) && maxConcurrent >= 1)) {
      throw new ConfigError('maxConcurrent', `must be an integer >= 1, got ${maxConcurrent}`);
    }
    if (!(Number.isInteger(maxQueue) && maxQueue >= 0)) {
      throw new ConfigError('maxQueue', `must be an integer >= 0, got ${maxQueue}`);
    }
    if (!(Number.isFinite(queueTimeoutMs) && queueTimeoutMs >= 0)) {
      throw new ConfigError('queueTimeoutMs', `must be a number of milliseconds >= 0, got ${queueTimeoutMs}`);
    }
    this.maxConcurrent = maxConcurrent;
    this.maxQueue = maxQueue;
    this.queueTimeoutMs = queueTimeoutMs;
    this.name = options.name ?? 'concurrency';
    this.#clock = options.clock ?? systemClock;
  }

  /** Calls holding a slot now. */
  get active(): number {
    return this.#active;
  }

  /** Calls waiting for a slot now. */
  get queued(): number {
    return this.#queued;
  }

  /** True when no call holds a slot or waits: the limit can be dropped and made again. */
  get idle(): boolean {
    return this.#active === 0 && this.#queued === 0;
  }

  /**
   * Takes a slot if one is free and nobody waits for one (waiting calls go first); never waits.
   * A refusal has no `retryAfterMs`: a slot frees when a call ends, which nobody can foretell.
   */
  tryAcquire(): Decision {
    if (this.#active >= this.maxConcurrent || this.#queued > 0) return refused;
    this.#active++;
    return granted;
  }

  /**
   * Takes a slot, waiting in the queue when all are taken.
   * @throws BulkheadFullError when the queue is full or the wait outlasts `queueTimeoutMs`.
   * @throws the signal's reason when `signal` aborts during the wait.
   */
  acquire(signal?: AbortSignal): Promise<void> {
    if (this.tryAcquire().granted) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#queued >= this.maxQueue) {
      return Promise.reject(
        new BulkheadFullError(
          this.name,
          this.maxQueue === 0
            ? `all ${this.maxConcurrent} slots are taken`
            : `all ${this.maxConcurrent} slots are taken and ${this.maxQueue} calls wait`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        timer: undefined,
        onAbort: undefined,
        prev: this.#tail,
        next: undefined,
      };
      if (this.#tail === undefined) this.#head = waiter;
      else this.#tail.next = waiter;
      this.#tail = waiter;
      this.#queued++;
      waiter.timer = this.#clock.setTimer(this.queueTimeoutMs, () => {
        this.#leave(waiter);
        reject(new BulkheadFullError(this.name, `no slot freed within the queue timeout of ${this.queueTimeoutMs} ms`));
      });
      if (signal !== undefined) {
        waiter.onAbort = () => {
          this.#leave(waiter);
          reject(signal.reason);
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
    });
  }

  /**
   * Gives a slot back: the first waiting call gets it, or it becomes free.
   * @throws Error when no slot is held (a release without an acquire is a bug to find, not hide).
   */
  release(): void {
    if (this.#active === 0) throw new Error(`ConcurrencyLimit "${this.name}": release() without a held slot`);
    const first = this.#head;
    if (first === undefined) {
      this.#active--;
      return;
    }
    // The slot passes straight to the first waiter: `active` stays the same.
    this.#leave(first);
    first.resolve();
  }

  #leave(waiter: Waiter): void {
    waiter.timer?.cancel();
    if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    if (waiter.prev === undefined) this.#head = waiter.next;
    else waiter.prev.next = waiter.next;
    if (waiter.next === undefined) this.#tail = waiter.prev;
    else waiter.next.prev = waiter.prev;
    waiter.prev = undefined;
    waiter.next = undefined;
    this.#queued--;
  }
}
