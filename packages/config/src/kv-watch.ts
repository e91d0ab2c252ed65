import { ClosedError, Emitter, systemClock, TrellisError, type Clock } from '@trellis/core';
import { BlockingLoop, type BlockingLoopOptions, type BlockingQuery } from '@trellis/registry';
import type { KvEntry, KvView } from './consul-kv.js';

/**
 * How a {@link KvWatch} queries: the backoff and floor options of `@trellis/registry`'s
 * service watch (same names, same defaults), and whether it follows a prefix.
 */
export interface KvWatchOptions extends BlockingLoopOptions {
  /** Follow every key under the prefix (Consul's `?recurse`) instead of one key. */
  readonly recurse?: boolean;
}

/** Reads the watched key or prefix once, as a blocking query when `index` > 0. */
export type KvQuery = BlockingQuery<KvView>;

/** What {@link KvWatch.onRecovered} reports. */
export interface KvRecovered {
  /**
   * The index went back: the registry restarted (or a Consul leader changed) and the watch
   * started over from index 0, as Consul's documentation says to.
   */
  readonly reset: boolean;
}

/**
 * Follows a key or a prefix of the KV with blocking queries on X-Consul-Index: each query is
 * held by the registry until something under the key changes, so a change arrives in one round
 * trip, with no polling. After a failure it backs off (exponential, full jitter, capped) and
 * keeps the last entries, so that a registry outage leaves readers with the last value.
 * Made by {@link ConsulKv.watch}.
 *
 * @example
 * const kv = new ConsulKv();
 * const watch = kv.watch('config/forum/', { recurse: true });
 * watch.onChange((entries) => console.log(entries.map((e) => `${e.key}=${e.value}`)));
 * await watch.ready(5_000);
 * watch.close();
 */
export class KvWatch {
  readonly key: string;
  readonly #onClose: (() => void) | undefined;
  readonly #clock: Clock;
  readonly #loop: BlockingLoop<KvView>;
  readonly #changes = new Emitter<readonly KvEntry[]>();
  readonly #unavailable = new Emitter<unknown>();
  readonly #recovered = new Emitter<KvRecovered>();
  readonly #firsts = new Set<(...failure: [unknown?]) => void>();
  #entries: readonly KvEntry[] | undefined;
  #lastError: unknown;

  /** The entries (one or none for a key, in key order for a prefix): the first answer, then each change. */
  readonly onChange = this.#changes.event;
  /** A query failed (the error); fired once per outage. The last entries stay. */
  readonly onUnavailable = this.#unavailable.event;
  /** The registry answers again after failing, or its index went back (`reset`); fired before the entries. */
  readonly onRecovered = this.#recovered.event;

  /** @throws ConfigError for a negative or non-finite option. */
  constructor(key: string, query: KvQuery, options: KvWatchOptions = {}, onClose?: () => void) {
    this.key = key;
    this.#onClose = onClose;
    this.#clock = options.clock ?? systemClock;
    this.#loop = new BlockingLoop(
      query,
      {
        answered: (view, recovered) => {
          if (recovered !== undefined) this.#recovered.emit(recovered);
          this.#apply(view.entries);
        },
        failed: (error, failures) => this.#failed(error, failures),
      },
      options,
    );
  }

  /** The last entries the registry answered, kept while it is unreachable; undefined before the first. */
  current(): readonly KvEntry[] | undefined {
    return this.#entries;
  }

  /** True after a failed query, until the registry answers again. */
  get unavailable(): boolean {
    return this.#loop.failures > 0;
  }

  /**
   * Resolves once the watch has its first answer.
   * @throws (rejects with) the query's error (RegistryUnavailableError, ...) when the first
   *   query failed, a TrellisError of code TIMEOUT when nothing came within `timeoutMs`, and
   *   ClosedError once closed. The watch goes on trying in every case.
   */
  ready(timeoutMs = 5_000): Promise<void> {
    if (this.#entries !== undefined) return Promise.resolve();
    if (this.#loop.stopped) return Promise.reject(new ClosedError(`the watch of "${this.key}"`));
    if (this.#loop.failures > 0) return Promise.reject(this.#lastError);
    return new Promise((resolve, reject) => {
      const settle = (...failure: [unknown?]): void => {
        timer.cancel();
        this.#firsts.delete(settle);
        if (failure.length === 0) resolve();
        else reject(failure[0]);
      };
      const timer = this.#clock.setTimer(timeoutMs, () =>
        settle(
          new TrellisError('TIMEOUT', `no answer from the registry for "${this.key}" within ${timeoutMs} ms`, {
            retryable: true,
          }),
        ),
      );
      this.#firsts.add(settle);
    });
  }

  /** Stops watching: the query held by the registry is abandoned at once. Idempotent. */
  close(): void {
    if (this.#loop.stopped) return;
    this.#loop.stop();
    for (const settle of [...this.#firsts]) settle(new ClosedError(`the watch of "${this.key}"`));
    this.#changes.clear();
    this.#unavailable.clear();
    this.#recovered.clear();
    this.#onClose?.();
  }

  #failed(error: unknown, failures: number): void {
    this.#lastError = error;
    if (failures > 1) return;
    this.#unavailable.emit(error);
    for (const settle of [...this.#firsts]) settle(error);
  }

  #apply(entries: readonly KvEntry[]): void {
    const before = this.#entries;
    this.#entries = entries;
    for (const settle of [...this.#firsts]) settle();
    if (before !== undefined && sameEntries(before, entries)) return;
    this.#changes.emit(entries);
  }
}

// The same keys with the same values and lock holders: what readers see. A registry that
// restarted answers the same values at new indexes, which is no change.
function sameEntries(a: readonly KvEntry[], b: readonly KvEntry[]): boolean {
  return (
    a.length === b.length &&
    a.every((x, i) => {
      const y = b[i] as KvEntry;
      return x.key === y.key && x.value === y.value && x.session === y.session;
    })
  );
}
