import {
  ClosedError,
  ConfigError,
  Emitter,
  systemClock,
  type Clock,
  type Closeable,
  type ServiceInstance,
  type Timer,
} from '@trellis/core';
import { FailoverFile } from './failover-file.js';
import type { Registry, ServiceView } from './registry.js';
import { sameList, type ServiceWatch, type WatchEvent, type WatchOptions } from './service-watch.js';

export interface DiscoveryOptions {
  readonly clock?: Clock;
  /** Source of the watches' backoff jitter, in [0, 1); default Math.random. */
  readonly random?: () => number;
  /**
   * When fewer than this share of a service's registered instances are healthy, calls go to
   * all of them rather than overload the few (Envoy's panic threshold); 0 turns it off, and
   * watches then ask the registry for healthy instances only (?passing). Default 0.5.
   */
  readonly panicThreshold?: number;
  /**
   * After the registry comes back from an outage or a restart, instances known before it keep
   * receiving calls this long beside the ones it lists, while they register again (Eureka's
   * self-preservation, bounded). Default 10 000 ms, the default TTL.
   */
  readonly recoveryGraceMs?: number;
  /**
   * A directory where the last view of every watched service is kept, so that a process
   * starting while the registry is down can still call (Nacos's failover file). Default none.
   */
  readonly failoverDir?: string;
  /** How services are watched: floor between queries, wait, backoff. */
  readonly watch?: Omit<WatchOptions, 'clock' | 'random' | 'passingOnly'>;
}

/** A watched service's instances, as calls use them, changed. */
export interface InstancesChanged {
  readonly service: string;
  readonly instances: readonly ServiceInstance[];
}

/**
 * What discovery reports: every event of its watches, and its own decisions.
 * - `panic`: fewer healthy instances than the threshold; calls go to all `registered`.
 * - `panic-over`: enough are healthy again.
 * - `failover-loaded`: the registry could not be read at start, so the saved view is used.
 * - `failover-failed`: the failover file could not be read or written.
 */
export type DiscoveryEvent =
  | WatchEvent
  | { readonly type: 'panic'; readonly service: string; readonly healthy: number; readonly registered: number }
  | { readonly type: 'panic-over'; readonly service: string }
  | { readonly type: 'failover-loaded'; readonly service: string; readonly savedAt: number; readonly instances: number }
  | { readonly type: 'failover-failed'; readonly service: string; readonly error: unknown };

/**
 * What discovery knows of one watched service, from {@link Discovery.describe}: plain data,
 * the lists being the ones discovery holds (not copies).
 */
export interface DiscoveryStatus {
  readonly service: string;
  /** Healthy instances in the registry's last answer (or the failover file's); empty before the first. */
  readonly healthy: readonly ServiceInstance[];
  /** Registered instances failing their checks (always empty when the panic threshold is 0: only passing ones are asked for). */
  readonly unhealthy: readonly ServiceInstance[];
  /** What calls use now: the healthy ones, those kept through a registry restart, or all in panic; undefined before the first view. */
  readonly instances: readonly ServiceInstance[] | undefined;
  /** True while fewer than the panic threshold's share of the registered instances are healthy. */
  readonly panic: boolean;
  /** False from a failed query of the registry until one succeeds again; true before the first. */
  readonly registryReachable: boolean;
  /** The clock's reading when the instances calls use last changed (the first view included); undefined before it. */
  readonly updatedAt: number | undefined;
  /** True when the view came from the failover file and the registry has not answered since. */
  readonly fromFailoverFile: boolean;
}

interface Watched {
  readonly watch: ServiceWatch;
  reachable: boolean;
  updatedAt: number | undefined;
  fromFailoverFile: boolean;
  /** What calls use; undefined until the first view (or failover file). */
  instances: readonly ServiceInstance[] | undefined;
  /** The registry's view, or the failover file's. */
  view: Pick<ServiceView, 'healthy' | 'unhealthy'> | undefined;
  loading: Promise<readonly ServiceInstance[]> | undefined;
  /** Instances kept beside the registry's answer until `graceTimer` fires. */
  grace: readonly ServiceInstance[];
  graceTimer: Timer | undefined;
  panic: boolean;
}

/**
 * The caller's cache of where services are. It watches only the services this process calls,
 * with blocking queries (a change arrives in one round trip), and keeps serving the last known
 * instances while the registry cannot be reached (Eureka's behaviour). Optionally it keeps
 * them on disk for a start while the registry is down, applies a panic threshold, and bridges
 * a registry restart while instances register again.
 *
 * @throws ConfigError from the constructor for a panic threshold outside [0, 1] or a negative grace.
 * @example
 * const discovery = new Discovery(registry, { failoverDir: '.trellis/discovery' });
 * const users = await discovery.instances('users');
 */
export class Discovery implements Closeable {
  readonly #registry: Registry;
  readonly #clock: Clock;
  readonly #panicThreshold: number;
  readonly #graceMs: number;
  readonly #watchOptions: WatchOptions;
  readonly #failover: FailoverFile | undefined;
  readonly #watched = new Map<string, Watched>();
  readonly #changed = new Emitter<InstancesChanged>();
  readonly #events = new Emitter<DiscoveryEvent>();
  #closed = false;

  /** Fires when the instances calls use for a watched service change (not on the first load). */
  readonly onChanged = this.#changed.event;
  /** Instance, registry, panic and failover events of every watched service. */
  readonly onEvent = this.#events.event;

  constructor(registry: Registry, options: DiscoveryOptions = {}) {
    const panicThreshold = options.panicThreshold ?? 0.5;
    if (!(panicThreshold >= 0 && panicThreshold <= 1)) {
      throw new ConfigError('discovery.panicThreshold', `must be between 0 and 1, got ${panicThreshold}`);
    }
    const graceMs = options.recoveryGraceMs ?? 10_000;
    if (!(graceMs >= 0 && Number.isFinite(graceMs))) {
      throw new ConfigError('discovery.recoveryGraceMs', `must be a number of milliseconds >= 0, got ${graceMs}`);
    }
    this.#registry = registry;
    this.#clock = options.clock ?? systemClock;
    this.#panicThreshold = panicThreshold;
    this.#graceMs = graceMs;
    this.#watchOptions = {
      ...options.watch,
      clock: this.#clock,
      ...(options.random === undefined ? {} : { random: options.random }),
      passingOnly: panicThreshold === 0,
    };
    this.#failover =
      options.failoverDir === undefined
        ? undefined
        : new FailoverFile(options.failoverDir, (error, service) =>
            this.#events.emit({ type: 'failover-failed', service, error }),
          );
  }

  /**
   * The instances calls to `service` may go to: the healthy ones, or all registered ones in
   * panic. The first call for a service reads the registry and starts watching it; later calls
   * answer from the cache.
   * @throws RegistryUnavailableError when the service was never read, the registry is down, and
   *   no failover file holds it.
   * @throws ClosedError after close().
   */
  async instances(service: string): Promise<readonly ServiceInstance[]> {
    if (this.#closed) throw new ClosedError('Discovery');
    let watched = this.#watched.get(service);
    if (watched === undefined) {
      watched = this.#watch(service);
      this.#watched.set(service, watched);
    }
    if (watched.instances !== undefined) return watched.instances;
    watched.loading ??= this.#firstLoad(service, watched).finally(() => {
      if (watched !== undefined) watched.loading = undefined;
    });
    return watched.loading;
  }

  /**
   * What discovery knows of `service` now, read-only: the registry's last view, what calls use,
   * panic, whether the registry answers and when the view last changed. Undefined for a service
   * that is not watched (no call asked for it yet); asking starts no watch.
   *
   * @example
   * const users = discovery.describe('users');
   * if (users !== undefined && !users.registryReachable) log.warn('calling users from the last known list');
   */
  describe(service: string): DiscoveryStatus | undefined {
    const watched = this.#watched.get(service);
    if (watched === undefined) return undefined;
    return {
      service,
      healthy: watched.view?.healthy ?? [],
      unhealthy: watched.view?.unhealthy ?? [],
      instances: watched.instances,
      panic: watched.panic,
      registryReachable: watched.reachable,
      updatedAt: watched.updatedAt,
      fromFailoverFile: watched.fromFailoverFile,
    };
  }

  /** The services watched now, in the order they were first asked for. */
  get services(): readonly string[] {
    return [...this.#watched.keys()];
  }

  /** Stops every watch and finishes writing the failover files. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const watched = [...this.#watched.values()];
    this.#watched.clear();
    for (const w of watched) w.graceTimer?.cancel();
    await Promise.all(watched.map((w) => w.watch.close()));
    await this.#failover?.flush();
    this.#changed.clear();
    this.#events.clear();
  }

  #watch(service: string): Watched {
    const watch = this.#registry.watch(service, this.#watchOptions);
    const watched: Watched = {
      watch,
      instances: undefined,
      view: undefined,
      loading: undefined,
      grace: [],
      graceTimer: undefined,
      panic: false,
      reachable: true,
      updatedAt: undefined,
      fromFailoverFile: false,
    };
    watch.onEvent((event) => {
      if (event.type === 'registry-unavailable') watched.reachable = false;
      if (event.type === 'registry-recovered') watched.reachable = true;
      // Instances known before the registry came back stay while they register again.
      if (event.type === 'registry-recovered' && this.#graceMs > 0 && watched.instances !== undefined) {
        watched.grace = watched.instances;
        watched.graceTimer?.cancel();
        watched.graceTimer = this.#clock.setTimer(this.#graceMs, () => {
          watched.grace = [];
          watched.graceTimer = undefined;
          this.#update(service, watched);
        });
      }
      this.#events.emit(event);
    });
    watch.onView((view) => {
      watched.view = view;
      watched.fromFailoverFile = false;
      this.#update(service, watched);
      this.#failover?.save({
        service,
        savedAt: Date.now(),
        healthy: view.healthy,
        unhealthy: view.unhealthy,
      });
    });
    return watched;
  }

  async #firstLoad(service: string, watched: Watched): Promise<readonly ServiceInstance[]> {
    try {
      await watched.watch.ready();
    } catch (error) {
      const saved = await this.#failover?.load(service).catch((failure: unknown) => {
        this.#events.emit({ type: 'failover-failed', service, error: failure });
        return undefined;
      });
      if (saved === undefined || watched.instances !== undefined) {
        if (watched.instances !== undefined) return watched.instances;
        throw error;
      }
      watched.view = saved;
      watched.fromFailoverFile = true;
      this.#update(service, watched);
      this.#events.emit({ type: 'failover-loaded', service, savedAt: saved.savedAt, instances: saved.healthy.length });
    }
    return watched.instances ?? [];
  }

  // Recomputes what calls use from the view, the grace list and the panic threshold.
  #update(service: string, watched: Watched): void {
    if (this.#closed || watched.view === undefined) return;
    const { healthy, unhealthy } = watched.view;
    let usable = healthy;
    if (watched.grace.length > 0) {
      const listed = new Set(healthy.map((i) => i.id));
      const kept = watched.grace.filter((i) => !listed.has(i.id));
      if (kept.length > 0) usable = [...healthy, ...kept].sort(byId);
    }
    const registered = healthy.length + unhealthy.length;
    const panic = this.#panicThreshold > 0 && registered > 0 && usable.length < this.#panicThreshold * registered;
    if (panic) {
      const used = new Set(usable.map((i) => i.id));
      usable = [...usable, ...unhealthy.filter((i) => !used.has(i.id))].sort(byId);
    }
    if (panic !== watched.panic) {
      watched.panic = panic;
      this.#events.emit(
        panic ? { type: 'panic', service, healthy: healthy.length, registered } : { type: 'panic-over', service },
      );
    }
    const before = watched.instances;
    watched.instances = usable;
    const changed = before === undefined || !sameList(before, usable);
    if (changed) watched.updatedAt = this.#clock.now();
    if (changed && before !== undefined) this.#changed.emit({ service, instances: usable });
  }
}

function byId(x: ServiceInstance, y: ServiceInstance): number {
  return x.id < y.id ? -1 : x.id > y.id ? 1 : 0;
}
