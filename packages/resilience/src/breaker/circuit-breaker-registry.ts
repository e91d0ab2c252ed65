import {
  ClosedError,
  ConfigError,
  Emitter,
  systemClock,
  type CircuitStateChanged,
  type Disposable,
  type Event,
  type InstanceHealth,
  type ServiceInstance,
} from '@trellis/core';
import { CircuitBreaker, resolveConfig, type CircuitBreakerConfig } from './circuit-breaker.js';

export interface CircuitBreakerRegistryOptions extends CircuitBreakerConfig {
  /** Policy for some services, by service name, in place of the options above (not merged with them). */
  readonly services?: Readonly<Record<string, CircuitBreakerConfig>>;
  /**
   * A breaker that saw no outcome for this long is dropped when the next new breaker is made,
   * so that instances that went away without {@link CircuitBreakerRegistry.retain} being told
   * do not pile up; default 600 000 ms (10 minutes).
   */
  readonly idleTimeoutMs?: number;
}

/**
 * The breakers of one level (one per target service, or one per instance), each made the first
 * time its key is asked for and reused after. Use two registries for the two levels.
 *
 * A registry of per-instance breakers is also the {@link InstanceHealth} that load balancing
 * reads: an instance is ejected while its breaker would refuse a call (open, or half-open with
 * the probe out), and returns once its probe succeeds (outlier ejection).
 *
 * Memory stays bounded by the live targets: {@link retain} drops the breakers of instances that
 * discovery no longer lists, and breakers idle for `idleTimeoutMs` are dropped as new ones come.
 *
 * @throws ConfigError naming the field, for bad options.
 * @example
 * const breakers = new CircuitBreakerRegistry({ failureRateThreshold: 0.5, minimumCalls: 10 });
 * const users = new ServiceClient({ service: 'users', discovery, breakers });
 * breakers.onStateChanged((change) => log.warn(change, 'breaker changed state'));
 */
export class CircuitBreakerRegistry implements InstanceHealth, Disposable {
  readonly #breakers = new Map<string, CircuitBreaker>();
  readonly #config: CircuitBreakerConfig;
  readonly #services: ReadonlyMap<string, CircuitBreakerConfig>;
  readonly #idleTimeoutMs: number;
  readonly #stateChanged = new Emitter<CircuitStateChanged>();
  #lastSweep: number;
  #disposed = false;

  /** State changes of every breaker of this registry. */
  readonly onStateChanged: Event<CircuitStateChanged> = this.#stateChanged.event;

  constructor(options: CircuitBreakerRegistryOptions = {}) {
    const { services = {}, idleTimeoutMs = 600_000, ...config } = options;
    // Check every policy now, not at the first call to a service.
    resolveConfig(config);
    for (const [service, own] of Object.entries(services)) {
      resolveConfig(withClock(own, config.clock), `breaker.services.${service}`);
    }
    if (!(idleTimeoutMs > 0)) {
      throw new ConfigError('breaker.idleTimeoutMs', `must be a positive number of milliseconds, got ${idleTimeoutMs}`);
    }
    this.#config = config;
    this.#services = new Map(Object.entries(services));
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#lastSweep = (config.clock ?? systemClock).now();
  }

  /** Breakers held now. */
  get size(): number {
    return this.#breakers.size;
  }

  /**
   * The breaker for `instance` of `service` (per instance), or for `service` when `instance`
   * is left out (per service); made on first use, the same object after.
   * @throws ClosedError after {@link dispose}.
   */
  get(service: string, instance?: string): CircuitBreaker {
    return this.#breakers.get(instance ?? service) ?? this.#create(service, instance);
  }

  /** The breaker held for a key (an instance id or a service name), without making one. */
  find(key: string): CircuitBreaker | undefined {
    return this.#breakers.get(key);
  }

  /** True while the instance's breaker refuses calls; an instance with no breaker yet is healthy. */
  isEjected(instance: ServiceInstance): boolean {
    const breaker = this.#breakers.get(instance.id);
    return breaker !== undefined && !breaker.isCallPermitted;
  }

  /** Drops and disposes the breaker of a key; true if there was one. */
  forget(key: string): boolean {
    const breaker = this.#breakers.get(key);
    if (breaker === undefined) return false;
    this.#breakers.delete(key);
    breaker.dispose();
    return true;
  }

  /**
   * Keeps only the breakers of `keys` (the instances discovery lists now) and disposes the
   * others. Returns how many were dropped.
   */
  retain(keys: Iterable<string>): number {
    const live = keys instanceof Set ? (keys as ReadonlySet<string>) : new Set(keys);
    let dropped = 0;
    for (const key of [...this.#breakers.keys()]) {
      if (!live.has(key) && this.forget(key)) dropped++;
    }
    return dropped;
  }

  /** Disposes every breaker; the registry makes no more. */
  dispose(): void {
    this.#disposed = true;
    for (const breaker of this.#breakers.values()) breaker.dispose();
    this.#breakers.clear();
    this.#stateChanged.clear();
  }

  #create(service: string, instance: string | undefined): CircuitBreaker {
    if (this.#disposed) throw new ClosedError('circuit breaker registry');
    this.#sweep();
    const own = this.#services.get(service);
    const config = own === undefined ? this.#config : withClock(own, this.#config.clock);
    const breaker = new CircuitBreaker({ ...config, service, ...(instance === undefined ? {} : { instance }) });
    // Forward to the registry's listeners; the breaker's emitter is cleared when it is disposed.
    breaker.onStateChanged((change) => this.#stateChanged.emit(change));
    this.#breakers.set(instance ?? service, breaker);
    return breaker;
  }

  // At most once per idle timeout, and only when a breaker is being made: the map is walked
  // O(breakers) times per `idleTimeoutMs`, never per call.
  #sweep(): void {
    const now = (this.#config.clock ?? systemClock).now();
    if (now - this.#lastSweep < this.#idleTimeoutMs) return;
    this.#lastSweep = now;
    for (const [key, breaker] of [...this.#breakers]) {
      if (now - breaker.lastActivity >= this.#idleTimeoutMs) this.forget(key);
    }
  }
}

// A service's own policy uses the registry's clock unless it names one.
function withClock(config: CircuitBreakerConfig, clock: CircuitBreakerConfig['clock']): CircuitBreakerConfig {
  return clock === undefined || config.clock !== undefined ? config : { ...config, clock };
}
