import {
  ConfigError,
  Emitter,
  sleep,
  systemClock,
  type Clock,
  type Closeable,
  type ServiceInstance,
} from '@trellis/core';
import type { QueryOptions, ServiceView } from './registry.js';

/** How a {@link ServiceWatch} queries. */
export interface WatchOptions {
  readonly clock?: Clock;
  /** Source of the backoff jitter, in [0, 1); default Math.random. */
  readonly random?: () => number;
  /**
   * Least time between the starts of two queries, so that a service changing all the time
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
  /** Ask for healthy instances only (Consul's ?passing); the views' `unhealthy` is then empty. */
  readonly passingOnly?: boolean;
}

/**
 * What a watch reports. Instance events concern the healthy instances, the ones calls go to:
 * `instance-added` when one registers or turns healthy, `instance-removed` when one leaves or
 * turns unhealthy, `instance-changed` when one keeps its id but changes address, port, tags or
 * metadata.
 */
export type WatchEvent =
  | { readonly type: 'instance-added'; readonly service: string; readonly instance: ServiceInstance }
  | { readonly type: 'instance-removed'; readonly service: string; readonly instance: ServiceInstance }
  | {
      readonly type: 'instance-changed';
      readonly service: string;
      readonly instance: ServiceInstance;
      readonly previous: ServiceInstance;
    }
  /** A query failed; the last view stays. Fired once per outage. */
  | { readonly type: 'registry-unavailable'; readonly service: string; readonly error: unknown }
  /**
   * The registry answers again after failing, or answered with an index that went back
   * (`reset`: it restarted and may have lost its state, so instances are still registering
   * again). Fired before the view of that answer.
   */
  | { readonly type: 'registry-recovered'; readonly service: string; readonly reset: boolean };

/** Reads one view of the service the watch follows. */
export type ServiceQuery = (options: QueryOptions) => Promise<ServiceView>;

/**
 * Follows one service with blocking queries: each query is held by the registry until the
 * service changes, so a change reaches the watch in one round trip. Between queries it keeps a
 * floor; after a failure it backs off with full jitter and keeps the last view (Eureka's rule:
 * a registry outage must not empty a caller's cache). Registry implementations create it in
 * `watch()`; it is exported for registries of your own.
 *
 * @throws ConfigError from the constructor for a negative or non-finite option.
 * @example
 * const watch = registry.watch('users');
 * watch.onEvent((e) => console.log(e.type));
 * const view = await watch.ready();
 */
export class ServiceWatch implements Closeable {
  readonly service: string;
  readonly #query: ServiceQuery;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #floorMs: number;
  readonly #waitMs: number;
  readonly #backoffBaseMs: number;
  readonly #backoffMaxMs: number;
  readonly #passingOnly: boolean;
  readonly #views = new Emitter<ServiceView>();
  readonly #events = new Emitter<WatchEvent>();
  readonly #stop = new AbortController();
  readonly #loop: Promise<void>;
  #view: ServiceView | undefined;
  #lastError: unknown;
  #failures = 0;
  #outcome: { promise: Promise<ServiceView>; resolve(view: ServiceView): void; reject(error: unknown): void };

  /** Every view that differs from the one before, the first included. */
  readonly onView = this.#views.event;
  /** Instance and availability events. */
  readonly onEvent = this.#events.event;

  constructor(service: string, query: ServiceQuery, options: WatchOptions = {}) {
    this.service = service;
    this.#query = query;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#floorMs = nonNegative('watch.floorMs', options.floorMs ?? 50);
    this.#waitMs = nonNegative('watch.waitMs', options.waitMs ?? 60_000);
    this.#backoffBaseMs = nonNegative('watch.backoffBaseMs', options.backoffBaseMs ?? 250);
    this.#backoffMaxMs = nonNegative('watch.backoffMaxMs', options.backoffMaxMs ?? 10_000);
    this.#passingOnly = options.passingOnly ?? false;
    this.#outcome = deferred();
    this.#loop = this.#run();
  }

  /** The last view the registry answered, kept while it is unreachable; undefined before the first. */
  get view(): ServiceView | undefined {
    return this.#view;
  }

  /**
   * The view, once there is one.
   * @throws (rejects with) the query's error (RegistryUnavailableError, ...) when no view was
   *   ever read and the latest query failed; the watch goes on trying.
   */
  ready(): Promise<ServiceView> {
    if (this.#view !== undefined) return Promise.resolve(this.#view);
    if (this.#failures > 0) return Promise.reject(this.#lastError);
    return this.#outcome.promise;
  }

  /** Stops querying; the query in flight is abandoned. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    this.#views.clear();
    this.#events.clear();
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    // `index` is what the next query sends; `seen` the last index answered. After a failure the
    // next query does not block: a registry that restarted with lower indexes would otherwise
    // hold it for the whole wait before the watch saw anything.
    let index = 0;
    let seen = 0;
    while (!signal.aborted) {
      const started = this.#clock.now();
      let view: ServiceView;
      try {
        view = await this.#query({ index, waitMs: this.#waitMs, passingOnly: this.#passingOnly, signal });
      } catch (error) {
        if (signal.aborted) return;
        this.#failed(error);
        index = 0;
        await this.#pause(Math.max(this.#backoff(), this.#floorMs - (this.#clock.now() - started)), signal);
        continue;
      }
      if (signal.aborted) return;
      // Consul's rule: an index that goes back means the registry lost its state.
      const reset = view.index < seen;
      if (this.#failures > 0 || reset) {
        this.#failures = 0;
        this.#events.emit({ type: 'registry-recovered', service: this.service, reset });
      }
      index = seen = view.index;
      this.#apply(view);
      await this.#pause(this.#floorMs - (this.#clock.now() - started), signal);
    }
  }

  #failed(error: unknown): void {
    this.#lastError = error;
    if (++this.#failures === 1) {
      this.#events.emit({ type: 'registry-unavailable', service: this.service, error });
      if (this.#view === undefined) {
        this.#outcome.reject(error);
        this.#outcome = deferred();
      }
    }
  }

  #apply(view: ServiceView): void {
    const before = this.#view;
    this.#view = view;
    if (before === undefined) {
      this.#outcome.resolve(view);
    } else if (sameList(before.healthy, view.healthy) && sameList(before.unhealthy, view.unhealthy)) {
      return;
    }
    this.#views.emit(view);
    for (const event of instanceEvents(this.service, before?.healthy ?? [], view.healthy)) this.#events.emit(event);
  }

  #backoff(): number {
    const ceiling = Math.min(this.#backoffMaxMs, this.#backoffBaseMs * 2 ** Math.min(this.#failures - 1, 30));
    return this.#random() * ceiling;
  }

  async #pause(ms: number, signal: AbortSignal): Promise<void> {
    if (ms <= 0) return;
    await sleep(this.#clock, ms, signal).catch(() => undefined);
  }
}

/** The events that turn the healthy list `before` into `after`. */
function instanceEvents(
  service: string,
  before: readonly ServiceInstance[],
  after: readonly ServiceInstance[],
): WatchEvent[] {
  const events: WatchEvent[] = [];
  const old = new Map(before.map((i) => [i.id, i]));
  for (const instance of after) {
    const previous = old.get(instance.id);
    old.delete(instance.id);
    if (previous === undefined) events.push({ type: 'instance-added', service, instance });
    else if (!sameInstance(previous, instance)) events.push({ type: 'instance-changed', service, instance, previous });
  }
  for (const instance of old.values()) events.push({ type: 'instance-removed', service, instance });
  return events;
}

/** Whether two lists hold the same instances in the same order (registries sort by id). */
export function sameList(a: readonly ServiceInstance[], b: readonly ServiceInstance[]): boolean {
  return a.length === b.length && a.every((x, i) => sameInstance(x, b[i] as ServiceInstance));
}

function sameInstance(a: ServiceInstance, b: ServiceInstance): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

function nonNegative(field: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new ConfigError(field, `must be a number >= 0, got ${value}`);
  return value;
}

function deferred<T>(): { promise: Promise<T>; resolve(value: T): void; reject(error: unknown): void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A first failure nobody asked about is not an unhandled rejection: ready() reports it.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}
