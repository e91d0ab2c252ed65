import {
  Emitter,
  type Event,
  type Filter,
  type LimitRejected,
  type Reply,
  type Stage,
  type StageEnv,
} from '@trellis/core';
import { chooser, scopeOf, type Chosen, type LimiterChoice } from '../shared/limiter-choice.js';
import { forward, neverAborted, type Policy } from '../shared/policy.js';
import { BulkheadFullError } from './bulkhead-full-error.js';
import type { ConcurrencyLimit } from './concurrency-limit.js';

export interface BulkheadOptions {
  /** The stage's name; default "bulkhead". */
  readonly name?: string;
}

/**
 * Bounds the calls in flight with a {@link ConcurrencyLimit}: a call waits in its queue for a
 * slot, or is refused with `BulkheadFullError` (code `BULKHEAD_FULL`). The slot is released
 * when the call settles, whichever way. A stage of a client's stack, or around any function
 * with {@link execute}.
 *
 * @throws ConfigError when `perKey` comes without `key`.
 * @example
 * const pool = new Bulkhead(new ConcurrencyLimit({ maxConcurrent: 20, maxQueue: 100, queueTimeoutMs: 250 }));
 * const rows = await pool.execute((signal) => db.query('select 1', { signal }));
 */
export class Bulkhead implements Stage, Policy {
  readonly name: string;
  readonly role = 'bulkhead';
  readonly #pick: (call: Parameters<ReturnType<typeof chooser>>[0]) => Chosen<ConcurrencyLimit>;
  readonly #rejected = new Emitter<LimitRejected>();
  /** A call was refused (emitted before the caller sees the error). */
  readonly onRejected: Event<LimitRejected> = this.#rejected.event;

  constructor(limit: LimiterChoice<ConcurrencyLimit>, options: BulkheadOptions = {}) {
    this.name = options.name ?? 'bulkhead';
    this.#pick = chooser(limit);
  }

  make(env: StageEnv): Filter {
    forward(env, this.onRejected);
    return this.filter;
  }

  readonly filter: Filter = (call, context, next) =>
    this.#run<Reply>(call.service, this.#pick(call), context, () => next(call, context));

  /**
   * Runs `fn` in a slot, waiting in the queue when all are taken.
   * @throws BulkheadFullError when the queue is full or the wait times out; what `fn` throws otherwise.
   */
  execute<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const given = signal ?? neverAborted;
    return this.#run(this.name, this.#pick(undefined), { signal }, () => fn(given));
  }

  async #run<T>(
    service: string,
    chosen: Chosen<ConcurrencyLimit>,
    signalOf: { readonly signal: AbortSignal | undefined } | undefined,
    start: () => Promise<T>,
  ): Promise<T> {
    const limiter = chosen.limiter;
    if (!limiter.tryAcquire().granted) {
      try {
        // Read the call's signal only when the call has to queue: an unread signal costs nothing.
        await limiter.acquire(signalOf?.signal);
      } catch (error) {
        if (BulkheadFullError.is(error) && this.#rejected.hasListeners) {
          this.#rejected.emit({
            type: 'limit-rejected',
            service,
            limit: 'concurrency',
            scope: scopeOf(limiter.name, chosen.key),
            retryAfterMs: undefined,
          });
        }
        throw error;
      }
    }
    try {
      return await start();
    } finally {
      limiter.release();
    }
  }
}
