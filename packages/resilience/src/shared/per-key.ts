import { ConfigError, systemClock, type Clock } from '@trellis/core';

export interface PerKeyOptions<L> {
  /** Makes the limiter of a key the first time the key is seen. */
  readonly create: (key: string) => L;
  /** Most keys kept at once; default 10 000. Beyond it, the oldest idle key is dropped. */
  readonly maxKeys?: number;
  /** A key untouched this long, whose limiter is idle, is dropped; default 60 000 ms. */
  readonly idleAfterMs?: number;
  readonly clock?: Clock;
}

interface Entry<L> {
  readonly limiter: L;
  usedAt: number;
}

// Keys evicted on overflow are looked for among this many of the oldest.
const evictionScan = 16;

/**
 * One limiter per key (per caller, per route, per user), in bounded memory: at most `maxKeys`
 * limiters, and keys idle for `idleAfterMs` are dropped (a full token bucket, an empty window,
 * a concurrency limit with nothing in flight). A dropped key comes back as a new limiter, which
 * for an idle one changes nothing.
 *
 * On overflow the least recently inserted idle key among the oldest few goes; if all of those
 * are busy, the oldest goes anyway, so that memory stays bounded under a flood of new keys (a
 * busy concurrency limit dropped that way counts its key from zero again).
 *
 * @throws ConfigError from the constructor for `maxKeys` or `idleAfterMs` out of range.
 * @example
 * const perUser = new PerKey({ create: () => new TokenBucket({ ratePerSecond: 5, burst: 10 }) });
 * perUser.get(userId).tryAcquire();
 */
export class PerKey<L extends { readonly idle: boolean }> {
  readonly maxKeys: number;
  readonly idleAfterMs: number;
  readonly #create: (key: string) => L;
  readonly #clock: Clock;
  readonly #entries = new Map<string, Entry<L>>();
  #nextSweepAt: number;

  constructor(options: PerKeyOptions<L>) {
    const maxKeys = options.maxKeys ?? 10_000;
    const idleAfterMs = options.idleAfterMs ?? 60_000;
    if (!(Number.isInteger(maxKeys) && maxKeys >= 1))
      throw new ConfigError('maxKeys', `must be an integer >= 1, got ${maxKeys}`);
    if (!(Number.isFinite(idleAfterMs) && idleAfterMs > 0)) {
      throw new ConfigError('idleAfterMs', `must be a positive number of milliseconds, got ${idleAfterMs}`);
    }
    this.maxKeys = maxKeys;
    this.idleAfterMs = idleAfterMs;
    this.#create = options.create;
    this.#clock = options.clock ?? systemClock;
    this.#nextSweepAt = this.#clock.now() + idleAfterMs;
  }

  /** Keys held now. */
  get size(): number {
    return this.#entries.size;
  }

  /** The limiter of `key`, made on first use. */
  get(key: string): L {
    const now = this.#clock.now();
    if (now >= this.#nextSweepAt) this.#sweep(now);
    const entry = this.#entries.get(key);
    if (entry !== undefined) {
      // Move a key to the young end at most once per sweep period, not on every call: the order
      // stays close to least-recently-used at the price of a Map write per key per period.
      if (now - entry.usedAt >= this.idleAfterMs / 2) {
        this.#entries.delete(key);
        this.#entries.set(key, entry);
      }
      entry.usedAt = now;
      return entry.limiter;
    }
    if (this.#entries.size >= this.maxKeys) this.#evictOne();
    const limiter = this.#create(key);
    this.#entries.set(key, { limiter, usedAt: now });
    return limiter;
  }

  #sweep(now: number): void {
    // Runs at most once per half idle period; visits each key once, so the cost per call stays
    // constant on average.
    this.#nextSweepAt = now + this.idleAfterMs / 2;
    for (const [key, entry] of this.#entries) {
      if (now - entry.usedAt >= this.idleAfterMs && entry.limiter.idle) this.#entries.delete(key);
    }
  }

  #evictOne(): void {
    let oldest: string | undefined;
    let scanned = 0;
    for (const [key, entry] of this.#entries) {
      oldest ??= key;
      if (entry.limiter.idle) {
        this.#entries.delete(key);
        return;
      }
      if (++scanned >= evictionScan) break;
    }
    if (oldest !== undefined) this.#entries.delete(oldest);
  }
}
