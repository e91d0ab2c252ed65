import { systemClock, TrellisError, type Clock, type Timer } from '@trellis/core';
import { parseGoDuration } from './go-duration.js';
import { IndexGraveyard } from './index-graveyard.js';

/**
 * What a change touched: `service:<name>` for a service and its checks, `kv:<key>` for a key.
 * A blocking query wakes for the topics it reads.
 */
export type Topic = string;

/** The `?index` and `?wait` of a blocking query. */
export interface BlockingParams {
  /** The index the client last saw; the query waits for a change after it. */
  readonly index: number;
  /** How long to wait at most, before jitter. */
  readonly waitMs: number;
}

/** A malformed `?index` or `?wait`; `param` names it. Code `INVALID_QUERY_PARAM`. */
export class BadQueryParamError extends TrellisError {
  readonly param: string;
  /** The HTTP status the server answers it with. */
  readonly statusCode = 400;

  constructor(param: string, message: string) {
    super('INVALID_QUERY_PARAM', message);
    this.param = param;
  }
}

/** Consul's limits: 5 minutes when `?wait` is absent, 10 at most. */
export const defaultWaitMs = 5 * 60_000;
export const maxWaitMs = 10 * 60_000;

/**
 * Reads a blocking query's parameters.
 * @returns undefined when there is no `?index`, or it is 0: the query answers at once.
 * @throws BadQueryParamError for an index that is not a non-negative integer, or a wait that
 *   is not a Go duration.
 */
export function parseBlockingParams(query: Readonly<Record<string, unknown>>): BlockingParams | undefined {
  const index = first(query['index']);
  const wait = first(query['wait']);
  let waitMs = defaultWaitMs;
  if (wait !== undefined) {
    try {
      waitMs = parseGoDuration(wait);
    } catch {
      throw new BadQueryParamError('wait', `Invalid wait time: "${wait}" is not a duration like "30s" or "5m"`);
    }
    if (waitMs < 0) throw new BadQueryParamError('wait', `Invalid wait time: "${wait}" is negative`);
  }
  if (index === undefined) return undefined;
  if (!/^\d+$/.test(index) || !Number.isSafeInteger(Number(index))) {
    throw new BadQueryParamError('index', `Invalid index: "${index}" is not a non-negative integer`);
  }
  if (Number(index) === 0) return undefined;
  return { index: Number(index), waitMs: Math.min(waitMs, maxWaitMs) };
}

function first(value: unknown): string | undefined {
  const v = Array.isArray(value) ? (value[0] as unknown) : value;
  return typeof v === 'string' ? v : undefined;
}

/** Options of {@link BlockingQueries}. */
export interface BlockingQueriesOptions {
  /** Times waits and the reaping of topic indexes; default `systemClock`. */
  readonly clock?: Clock;
  /** The jitter's random source; default `Math.random`. */
  readonly random?: () => number;
  /** How long a topic's index is kept after its last change; default 15 minutes, as Consul's tombstone_ttl. */
  readonly tombstoneTtlMs?: number;
  /** Whether nothing under `topic` is left, so that its index may be reaped; default always. */
  readonly isGone?: (topic: Topic) => boolean;
  /** Told of every change notified and how many held reads it woke (0 included), for the metrics. */
  readonly onNotified?: (woken: number) => void;
}

// Reads woken per turn of the event loop; a slice of large answers takes a few milliseconds.
const wakeSlice = 100;

interface Waiter {
  readonly matches: (topic: Topic) => boolean;
  readonly wake: () => void;
}

/**
 * Consul's blocking queries (long polling): a read with `?index=N` is held until something it
 * reads changes after index N, or until its `?wait` runs out, plus a random jitter of up to a
 * sixteenth of it so that many watchers do not come back at the same instant.
 *
 * Stores call {@link notify} with the topics of each change; a held read wakes when one of them
 * matches. Changes elsewhere do not wake it, so a watcher of one service is not woken by the
 * heartbeats of another.
 *
 * @example
 * await blocking.wait(parseBlockingParams(request.query), () => catalog.index,
 *   (topic) => topic === `service:${name}`, signal);
 * // then answer with the current state and X-Consul-Index
 */
export class BlockingQueries {
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #waiters = new Set<Waiter>();
  // The index of the last change of each topic that was notified with one, reaped a TTL
  // after the topic's last change once nothing under it is left (a deregistered service).
  readonly #topicIndex: IndexGraveyard;
  readonly #onNotified: ((woken: number) => void) | undefined;
  #closed = false;

  constructor(options: BlockingQueriesOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#onNotified = options.onNotified;
    this.#topicIndex = new IndexGraveyard({
      clock: this.#clock,
      ...(options.tombstoneTtlMs === undefined ? {} : { ttlMs: options.tombstoneTtlMs }),
      ...(options.isGone === undefined ? {} : { canReap: options.isGone }),
    });
  }

  /** Topics whose index is kept now (one per service name seen within the tombstone TTL, or live). */
  get topicIndexes(): number {
    return this.#topicIndex.size;
  }

  /** The index kept for `topic`, or undefined (never notified with one, or reaped). */
  recordedIndex(topic: Topic): number | undefined {
    return this.#topicIndex.get(topic);
  }

  /** Every topic index kept, for a journal. */
  topicIndexEntries(): Array<[Topic, number]> {
    return [...this.#topicIndex.entries()];
  }

  /**
   * After a restart: topics reaped before it answer at least `index` (the restored catalog
   * index), so that their readers never see their index go back.
   */
  raiseIndexFloor(index: number): void {
    this.#topicIndex.raiseFloor(index);
  }

  /** Reads being held now. */
  get waiting(): number {
    return this.#waiters.size;
  }

  /**
   * Wakes every held read that reads one of `topics`. With `index`, also records it as the
   * topics' latest index, for {@link indexOf}.
   */
  notify(topics: readonly Topic[], index?: number): void {
    if (index !== undefined) for (const topic of topics) this.#topicIndex.set(topic, index);
    if (this.#waiters.size === 0) {
      this.#onNotified?.(0);
      return;
    }
    const woken: Waiter[] = [];
    for (const waiter of this.#waiters) {
      if (topics.some(waiter.matches)) woken.push(waiter);
    }
    this.#onNotified?.(woken.length);
    this.#wakeInSlices(woken, 0);
  }

  // Each woken read serialises (from the cache) and writes its answer before the event loop
  // turns again: 5,000 at once held every other request for a second. In slices, with the
  // loop free between them, a normal request waits for one slice at most.
  #wakeInSlices(woken: readonly Waiter[], from: number): void {
    const to = Math.min(woken.length, from + wakeSlice);
    for (let i = from; i < to; i++) woken[i]?.wake();
    if (to < woken.length) setImmediate(() => this.#wakeInSlices(woken, to));
  }

  /**
   * The index of the last change of `topic`, or 1 when it never changed. A read answers with
   * the largest index of the topics it reads, so that a client's next blocking query waits for
   * a change of what it reads, not of anything else (Consul keeps such indexes per table).
   */
  indexOf(topic: Topic): number {
    return this.#topicIndex.get(topic) ?? Math.max(1, this.#topicIndex.floor);
  }

  /**
   * Holds a read as a blocking query must. Resolves at once when `params` is undefined or the
   * index has already moved past `params.index`; otherwise when a matching change comes, when
   * the wait runs out, or when `signal` aborts (the client went away).
   */
  wait(
    params: BlockingParams | undefined,
    currentIndex: () => number,
    matches: (topic: Topic) => boolean,
    signal?: AbortSignal,
  ): Promise<void> {
    if (this.#closed || params === undefined || currentIndex() > params.index || signal?.aborted === true) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const waiter: Waiter = {
        matches,
        wake: () => {
          this.#waiters.delete(waiter);
          timer.cancel();
          signal?.removeEventListener('abort', waiter.wake);
          resolve();
        },
      };
      this.#waiters.add(waiter);
      const jitterMs = this.#random() * (params.waitMs / 16);
      const timer: Timer = this.#clock.setTimer(params.waitMs + jitterMs, waiter.wake);
      signal?.addEventListener('abort', waiter.wake, { once: true });
    });
  }

  /** Answers every held read now, and every later one at once, as the server does when it shuts down. */
  close(): void {
    this.#closed = true;
    for (const waiter of [...this.#waiters]) waiter.wake();
  }
}
