import { ConfigError, sleep, systemClock, type Clock } from '@trellis/core';

/** How a blocking-query loop paces itself; the options of ServiceWatch and of `@trellis/config`'s KvWatch. */
export interface BlockingLoopOptions {
  readonly clock?: Clock;
  /** Source of the backoff jitter, in [0, 1); default Math.random. */
  readonly random?: () => number;
  /**
   * Least time between the starts of two queries, so that something changing all the time
   * cannot drive a tight loop; default 50 ms.
   */
  readonly floorMs?: number;
  /** How long the registry may hold each blocking query; default 60 000 ms. */
  readonly waitMs?: number;
  /**
   * After a failed query, wait a random time between 0 and `backoffBaseMs * 2^(failures - 1)`,
   * capped at `backoffMaxMs` (exponential backoff with full jitter); defaults 250 and 10 000 ms.
   */
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
}

/** One query of the loop: blocks while the index is still `index` (0: answers at once). */
export type BlockingQuery<V> = (request: { index: number; waitMs: number; signal: AbortSignal }) => Promise<V>;

/** What the loop tells its owner. */
export interface BlockingLoopHandlers<V> {
  /**
   * An answer. `recovered` is set when the registry answers after failing, or answered with an
   * index that went back (`reset`: it restarted and may have lost its state).
   */
  answered(view: V, recovered: { readonly reset: boolean } | undefined): void;
  /** A query failed; `failures` counts the failures since the last answer (1 for a new outage). */
  failed(error: unknown, failures: number): void;
}

/**
 * Runs blocking queries one after the other on X-Consul-Index until stopped, as Consul's
 * documentation describes them: the next query sends the index answered; an index that goes
 * back starts over from 0; a failure backs off (exponential, full jitter, capped) and the next
 * query does not block (a registry that restarted with lower indexes would otherwise hold it
 * for the whole wait); a floor between the starts of two queries prevents a tight loop.
 *
 * @throws ConfigError from the constructor for a negative or non-finite option.
 * @example
 * const loop = new BlockingLoop<ServiceView>(
 *   (request) => registry.query('users', request),
 *   { answered: (view) => console.log(view.healthy.length), failed: (error) => console.warn(error) },
 * );
 * loop.stop();
 */
export class BlockingLoop<V extends { readonly index: number }> {
  readonly #query: BlockingQuery<V>;
  readonly #handlers: BlockingLoopHandlers<V>;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #floorMs: number;
  readonly #waitMs: number;
  readonly #backoffBaseMs: number;
  readonly #backoffMaxMs: number;
  readonly #stop = new AbortController();
  #failures = 0;
  /** Ends once the loop stopped and its last query settled. */
  readonly done: Promise<void>;

  constructor(query: BlockingQuery<V>, handlers: BlockingLoopHandlers<V>, options: BlockingLoopOptions = {}) {
    this.#query = query;
    this.#handlers = handlers;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#floorMs = nonNegative('watch.floorMs', options.floorMs ?? 50);
    this.#waitMs = nonNegative('watch.waitMs', options.waitMs ?? 60_000);
    this.#backoffBaseMs = nonNegative('watch.backoffBaseMs', options.backoffBaseMs ?? 250);
    this.#backoffMaxMs = nonNegative('watch.backoffMaxMs', options.backoffMaxMs ?? 10_000);
    this.done = this.#run();
  }

  /** Failures since the last answer; 0 while the registry answers. */
  get failures(): number {
    return this.#failures;
  }

  /** True once {@link stop} was called. */
  get stopped(): boolean {
    return this.#stop.signal.aborted;
  }

  /** Stops the loop; the query in flight is abandoned (its signal aborts). */
  stop(): void {
    this.#stop.abort();
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    // `index` is what the next query sends; `seen` the last index answered.
    let index = 0;
    let seen = 0;
    while (!signal.aborted) {
      const started = this.#clock.now();
      let view: V;
      try {
        view = await this.#query({ index, waitMs: this.#waitMs, signal });
      } catch (error) {
        if (signal.aborted) return;
        this.#handlers.failed(error, ++this.#failures);
        index = 0;
        await this.#pause(Math.max(this.#backoff(), this.#floorMs - (this.#clock.now() - started)));
        continue;
      }
      if (signal.aborted) return;
      // Consul's rule: an index that goes back resets the loop to 0.
      const reset = view.index < seen;
      const recovered = this.#failures > 0 || reset ? { reset } : undefined;
      this.#failures = 0;
      index = seen = reset ? 0 : view.index;
      this.#handlers.answered(view, recovered);
      await this.#pause(this.#floorMs - (this.#clock.now() - started));
    }
  }

  #backoff(): number {
    const ceiling = Math.min(this.#backoffMaxMs, this.#backoffBaseMs * 2 ** Math.min(this.#failures - 1, 30));
    return this.#random() * ceiling;
  }

  async #pause(ms: number): Promise<void> {
    if (ms <= 0) return;
    await sleep(this.#clock, ms, this.#stop.signal).catch(() => undefined);
  }
}

function nonNegative(field: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new ConfigError(field, `must be a number >= 0, got ${value}`);
  return value;
}
