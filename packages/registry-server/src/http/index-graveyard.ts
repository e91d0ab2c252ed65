import type { Clock } from '@trellis/core';

/** Consul's `tombstone_ttl`: how long the index of something gone is kept; 15 minutes. */
export const defaultTombstoneTtlMs = 15 * 60_000;

/** Options of {@link IndexGraveyard}. */
export interface IndexGraveyardOptions {
  readonly clock: Clock;
  /** How long an index is kept after it was last set; default {@link defaultTombstoneTtlMs}. */
  readonly ttlMs?: number;
  /**
   * Whether the index of `key` may go once its time is up; default always. An index kept for
   * something still there (a service with instances) is looked at again one TTL later.
   */
  readonly canReap?: (key: string) => boolean;
}

interface Grave {
  readonly index: number;
  readonly at: number;
}

/**
 * Indexes of things that changed or went away (KV tombstones, the last change of each service
 * name), kept so that a blocking reader sees a later index when something it reads is
 * deleted, and reaped after a TTL on the clock as Consul's tombstone GC reaps them, so that
 * create/delete churn cannot grow the map without bound. Reaping is done on the way, by
 * {@link set} and {@link size}: the map holds at most what one TTL of churn adds.
 *
 * Unlike Consul, whose reader of a reaped tombstone may see its index go back, the graveyard
 * remembers the largest index it ever reaped ({@link floor}); readers answer at least that for
 * what is no longer here, so an index a client saw never goes backwards (at the cost of one
 * early answer to readers whose index was below the floor).
 *
 * @example
 * const graves = new IndexGraveyard({ clock });
 * graves.set('config/old', 42);
 * graves.get('config/old'); // 42, until 15 minutes later
 * graves.floor;             // then 42
 */
export class IndexGraveyard {
  // Oldest first: set() moves a key to the end, so the front is always the next to reap.
  readonly #graves = new Map<string, Grave>();
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #canReap: (key: string) => boolean;
  #floor = 0;

  constructor(options: IndexGraveyardOptions) {
    this.#clock = options.clock;
    this.#ttlMs = options.ttlMs ?? defaultTombstoneTtlMs;
    this.#canReap = options.canReap ?? (() => true);
  }

  /** Indexes kept now, once those past their time are reaped. */
  get size(): number {
    this.#reap();
    return this.#graves.size;
  }

  /** The largest index reaped so far, or raised to with {@link raiseFloor}; 0 before any. */
  get floor(): number {
    return this.#floor;
  }

  get(key: string): number | undefined {
    return this.#graves.get(key)?.index;
  }

  /** Keeps `index` for `key` for one TTL from now. */
  set(key: string, index: number): void {
    this.#graves.delete(key);
    this.#graves.set(key, { index, at: this.#clock.now() });
    this.#reap();
  }

  delete(key: string): void {
    this.#graves.delete(key);
  }

  /** Every key kept with its index, oldest first. */
  *entries(): IterableIterator<[string, number]> {
    for (const [key, grave] of this.#graves) yield [key, grave.index];
  }

  /**
   * Raises {@link floor} to `index`: after a restart, indexes reaped before it are unknown,
   * and the state's own index bounds them.
   */
  raiseFloor(index: number): void {
    this.#floor = Math.max(this.#floor, index);
  }

  // Reaps from the front while it is past its time: each set() pays for at most what it added,
  // so there is no timer (which would keep a clock's timers busy for 15 minutes after a delete).
  #reap(): void {
    const now = this.#clock.now();
    const expired: string[] = [];
    for (const [key, grave] of this.#graves) {
      if (grave.at + this.#ttlMs > now) break;
      expired.push(key);
    }
    if (expired.length === 0) return;
    for (const key of expired) {
      const grave = this.#graves.get(key);
      if (grave === undefined) continue;
      this.#graves.delete(key);
      if (this.#canReap(key)) this.#floor = Math.max(this.#floor, grave.index);
      else this.#graves.set(key, { index: grave.index, at: now });
    }
  }
}
