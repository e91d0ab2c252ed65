import type { Closeable, ServiceInstance } from '@trellis/core';
import type { ServiceWatch, WatchOptions } from './service-watch.js';

/** What an instance sends to announce itself. */
export interface Registration {
  readonly instance: ServiceInstance;
  /**
   * The instance is reported unhealthy when no heartbeat arrives within this many milliseconds
   * (a TTL check). Heartbeat well inside it: {@link SelfRegistration} beats every third of it.
   */
  readonly ttlMs: number;
  /**
   * The registry removes the instance once it has been unhealthy this long, so that crashed
   * processes do not stay listed forever (Consul's DeregisterCriticalServiceAfter).
   */
  readonly deregisterAfterMs: number;
}

/** Options of {@link Registry.query}. */
export interface QueryOptions {
  /**
   * Answer only once the service's index has moved past this one (a Consul blocking query),
   * or when `waitMs` has passed. 0 (the default) answers at once.
   */
  readonly index?: number;
  /** How long a blocking query may be held; default 60 000 ms. */
  readonly waitMs?: number;
  /** Ask the registry for healthy instances only (Consul's ?passing); `unhealthy` is then empty. */
  readonly passingOnly?: boolean;
  /** Abandons the query. */
  readonly signal?: AbortSignal;
}

/** One read of a service. */
export interface ServiceView {
  /** The registry's index for the service (Consul's X-Consul-Index); it only moves forward, unless the registry lost its state. */
  readonly index: number;
  /** Instances whose every check passes, sorted by id. */
  readonly healthy: readonly ServiceInstance[];
  /** Registered instances with a check warning or critical, sorted by id. */
  readonly unhealthy: readonly ServiceInstance[];
}

/**
 * Where services announce themselves and find each other.
 *
 * Implementations: {@link MemoryRegistry} (one process), {@link ConsulRegistry} (the Trellis
 * registry server or a Consul agent). Methods reject with `RegistryUnavailableError` when the
 * registry cannot be reached and `RegistryRejectedError` when it refuses the request; an unknown
 * instance id is refused with status 404.
 */
export interface Registry extends Closeable {
  /** Adds the instance, or replaces it when its id is already registered. It is healthy at once. */
  register(registration: Registration): Promise<void>;
  /** Tells the registry the instance is alive, resetting its TTL. */
  heartbeat(instanceId: string): Promise<void>;
  /** Removes the instance. */
  deregister(instanceId: string): Promise<void>;
  /** The instances of `service` that are registered and healthy, in a stable order. */
  list(service: string): Promise<ServiceInstance[]>;
  /** One read of `service`, blocking when `options.index` is given (see {@link QueryOptions}). */
  query(service: string, options?: QueryOptions): Promise<ServiceView>;
  /**
   * Follows `service` with blocking queries until the watch is closed: typed events for
   * instances added, removed and changed, and for the registry becoming unavailable and
   * recovering; the last view is kept while the registry is unreachable.
   */
  watch(service: string, options?: WatchOptions): ServiceWatch;
}
