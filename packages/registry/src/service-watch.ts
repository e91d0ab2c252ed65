import { Emitter, type Closeable, type ServiceInstance } from '@trellis/core';
import { BlockingLoop, type BlockingLoopOptions } from './blocking-loop.js';
import type { QueryOptions, ServiceView } from './registry.js';

/** How a {@link ServiceWatch} queries: the pace of its blocking queries, and what it asks for. */
export interface WatchOptions extends BlockingLoopOptions {
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
  readonly #views = new Emitter<ServiceView>();
  readonly #events = new Emitter<WatchEvent>();
  readonly #loop: BlockingLoop<ServiceView>;
  #view: ServiceView | undefined;
  #lastError: unknown;
  #outcome: { promise: Promise<ServiceView>; resolve(view: ServiceView): void; reject(error: unknown): void };

  /** Every view that differs from the one before, the first included. */
  readonly onView = this.#views.event;
  /** Instance and availability events. */
  readonly onEvent = this.#events.event;

  constructor(service: string, query: ServiceQuery, options: WatchOptions = {}) {
    this.service = service;
    const passingOnly = options.passingOnly ?? false;
    this.#outcome = deferred();
    this.#loop = new BlockingLoop<ServiceView>(
      (request) => query({ ...request, passingOnly }),
      {
        answered: (view, recovered) => {
          if (recovered !== undefined) {
            this.#events.emit({ type: 'registry-recovered', service: this.service, reset: recovered.reset });
          }
          this.#apply(view);
        },
        failed: (error, failures) => this.#failed(error, failures),
      },
      options,
    );
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
    if (this.#loop.failures > 0) return Promise.reject(this.#lastError);
    return this.#outcome.promise;
  }

  /** Stops querying; the query in flight is abandoned. */
  async close(): Promise<void> {
    this.#loop.stop();
    await this.#loop.done;
    this.#views.clear();
    this.#events.clear();
  }

  #failed(error: unknown, failures: number): void {
    this.#lastError = error;
    if (failures === 1) {
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
