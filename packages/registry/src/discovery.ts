import {
  ClosedError,
  Emitter,
  systemClock,
  type Clock,
  type Closeable,
  type ServiceInstance,
  type Timer,
} from '@trellis/core';
import type { Registry } from './registry.js';

export interface DiscoveryOptions {
  readonly clock?: Clock;
  /** Milliseconds between two refreshes of a watched service; default 1000. */
  readonly refreshMs?: number;
}

/** A watched service's instance list changed. */
export interface InstancesChanged {
  readonly service: string;
  readonly instances: readonly ServiceInstance[];
}

/** A refresh failed; the last known instances stay in use. */
export interface RefreshFailed {
  readonly service: string;
  readonly error: unknown;
}

interface Watched {
  instances: readonly ServiceInstance[] | undefined;
  loading: Promise<readonly ServiceInstance[]> | undefined;
  timer: Timer | undefined;
}

/**
 * The caller's cache of where services are. It watches only the services this process asks
 * for, refreshing each in the background, and keeps serving the last known instances while
 * the registry cannot be reached (Eureka's behaviour), so that a registry outage does not stop
 * calls between services that are up.
 *
 * @example
 * const discovery = new Discovery(registry);
 * const users = await discovery.instances('users');
 */
export class Discovery implements Closeable {
  readonly #registry: Registry;
  readonly #clock: Clock;
  readonly #refreshMs: number;
  readonly #watched = new Map<string, Watched>();
  readonly #changed = new Emitter<InstancesChanged>();
  readonly #failed = new Emitter<RefreshFailed>();
  #closed = false;

  /** Fires when a watched service's instances change (not on the first load). */
  readonly onChanged = this.#changed.event;
  /** Fires when a refresh fails. */
  readonly onRefreshFailed = this.#failed.event;

  constructor(registry: Registry, options: DiscoveryOptions = {}) {
    this.#registry = registry;
    this.#clock = options.clock ?? systemClock;
    this.#refreshMs = options.refreshMs ?? 1_000;
  }

  /**
   * The healthy instances of `service`. The first call for a service asks the registry and
   * starts watching it; later calls answer from the cache.
   * @throws RegistryUnavailableError when the service was never loaded and the registry is down.
   * @throws ClosedError after close().
   */
  async instances(service: string): Promise<readonly ServiceInstance[]> {
    if (this.#closed) throw new ClosedError('Discovery');
    let watched = this.#watched.get(service);
    if (watched === undefined) {
      watched = { instances: undefined, loading: undefined, timer: undefined };
      this.#watched.set(service, watched);
    }
    if (watched.instances !== undefined) return watched.instances;
    watched.loading ??= this.#load(service, watched);
    return watched.loading;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const watched of this.#watched.values()) watched.timer?.cancel();
    this.#watched.clear();
    this.#changed.clear();
    this.#failed.clear();
  }

  async #load(service: string, watched: Watched): Promise<readonly ServiceInstance[]> {
    try {
      const instances = await this.#registry.list(service);
      watched.instances = instances;
      this.#scheduleRefresh(service, watched);
      return instances;
    } finally {
      watched.loading = undefined;
    }
  }

  #scheduleRefresh(service: string, watched: Watched): void {
    if (this.#closed) return;
    watched.timer = this.#clock.setTimer(this.#refreshMs, () => void this.#refresh(service, watched));
  }

  async #refresh(service: string, watched: Watched): Promise<void> {
    try {
      const instances = await this.#registry.list(service);
      if (this.#closed) return;
      const previous = watched.instances;
      watched.instances = instances;
      if (previous === undefined || !sameInstances(previous, instances)) this.#changed.emit({ service, instances });
    } catch (error) {
      if (this.#closed) return;
      this.#failed.emit({ service, error });
    }
    this.#scheduleRefresh(service, watched);
  }
}

function sameInstances(a: readonly ServiceInstance[], b: readonly ServiceInstance[]): boolean {
  return a.length === b.length && a.every((x, i) => JSON.stringify(x) === JSON.stringify(b[i]));
}
