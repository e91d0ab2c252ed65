import {
  ClosedError,
  ConfigError,
  Emitter,
  systemClock,
  type CircuitStateChanged,
  type Clock,
  type Closeable,
  type Event,
  type InstanceHealth,
  type ServiceInstance,
} from '@trellis/core';
import {
  CircuitBreaker,
  checkSaved,
  resolveConfig,
  type CircuitBreakerConfig,
  type CircuitBreakerLimits,
  type SavedCircuitState,
} from './circuit-breaker.js';

export interface CircuitBreakerRegistryOptions extends CircuitBreakerConfig {
  /** Policy for some services, by service name, in place of the options above (not merged with them). */
  readonly services?: Readonly<Record<string, CircuitBreakerConfig>>;
  /**
   * A breaker that saw no outcome for this long is dropped when the next new breaker is made,
   * so that instances that went away without {@link CircuitBreakerRegistry.retain} being told
   * do not pile up; default 600 000 ms (10 minutes).
   */
  readonly idleTimeoutMs?: number;
  /**
   * States saved by {@link CircuitBreakerRegistry.toJSON}, by key: each breaker starts from its
   * key's saved state when it is made.
   */
  readonly state?: Readonly<Record<string, SavedCircuitState>>;
}

/** Lets a stage hand the registry its stack's clock; not exported from the package. */
export let adoptClock: (registry: CircuitBreakerRegistry, clock: Clock) => void;

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
 * A registry made without a `clock` takes the clock of the first client (stack) it is built
 * into, so that its breakers open, wait and probe on the time the client was given.
 *
 * @throws ConfigError naming the field, for bad options.
 * @example
 * const breakers = new CircuitBreakerRegistry({ failureRateThreshold: 0.5, minimumCalls: 10 });
 * const users = new ServiceClient({ service: 'users', discovery, breakers });
 * breakers.onStateChanged((change) => log.warn(change, 'breaker changed state'));
 */
export class CircuitBreakerRegistry implements InstanceHealth, Closeable {
  readonly #breakers = new Map<string, CircuitBreaker>();
  #config: CircuitBreakerConfig;
  readonly #saved: Map<string, SavedCircuitState>;
  readonly #services: ReadonlyMap<string, CircuitBreakerConfig>;
  /** Live changes by service, from {@link configure}, over the policy the registry was made with. */
  readonly #overrides = new Map<string, CircuitBreakerLimits>();
  readonly #idleTimeoutMs: number;
  readonly #stateChanged = new Emitter<CircuitStateChanged>();
  #lastSweep: number;
  #closed = false;

  /** State changes of every breaker of this registry. */
  readonly onStateChanged: Event<CircuitStateChanged> = this.#stateChanged.event;

  constructor(options: CircuitBreakerRegistryOptions = {}) {
    const { services = {}, idleTimeoutMs = 600_000, state = {}, ...config } = options;
    // Check every policy now, not at the first call to a service.
    resolveConfig(config);
    for (const [service, own] of Object.entries(services)) {
      resolveConfig(withClock(own, config.clock), `breaker.services.${service}`);
    }
    if (!(idleTimeoutMs > 0)) {
      throw new ConfigError('breaker.idleTimeoutMs', `must be a positive number of milliseconds, got ${idleTimeoutMs}`);
    }
    for (const [key, saved] of Object.entries(state)) checkSaved(saved, `breaker.state.${key}`);
    this.#saved = new Map(Object.entries(state));
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
   * @throws ClosedError after {@link close}.
   */
  get(service: string, instance?: string): CircuitBreaker {
    return this.#breakers.get(instance ?? service) ?? this.#create(service, instance);
  }

  /**
   * Changes the policy of one service's breakers now, all or nothing: the fields of `overrides`
   * take the place of the registry's own for that service (its `services` entry, else the
   * registry's options), for the breakers made from now on and for those held already, which
   * keep their state and counts (see {@link CircuitBreaker.reconfigure}). `undefined` returns the
   * service to the policy the registry was made with. Other services are not touched, so a
   * registry shared by several clients may be changed for one of them.
   * @throws ConfigError naming the field ("breaker.minimumCalls") for a value out of range, or
   *   a combination that does not hold; nothing changes then.
   * @example
   * const breakers = new CircuitBreakerRegistry();
   * breakers.configure('users', { failureRateThreshold: 0.25 });
   * breakers.configure('users', undefined); // back to the registry's own policy
   */
  configure(service: string, overrides: CircuitBreakerLimits | undefined): void {
    const policy = this.#policyOf(service, overrides);
    resolveConfig(policy);
    if (overrides === undefined) this.#overrides.delete(service);
    else this.#overrides.set(service, { ...overrides });
    for (const breaker of this.#breakers.values()) {
      if (breaker.service === service) breaker.reconfigure(policy);
    }
  }

  /** The policy numbers for one service's breakers now: its own, or the registry's, with any change made by {@link configure}. */
  policy(service: string): CircuitBreakerLimits {
    const { clock, allowWarmUp, ...limits } = this.#policyOf(service, this.#overrides.get(service));
    void clock;
    void allowWarmUp;
    return limits;
  }

  #policyOf(service: string, overrides: CircuitBreakerLimits | undefined): CircuitBreakerConfig {
    const own = this.#services.get(service);
    const base = own === undefined ? this.#config : withClock(own, this.#config.clock);
    return overrides === undefined ? base : { ...base, ...overrides };
  }

  /**
   * Every breaker held now, in the order they were made: a copy, read-only for what it shows
   * (state gauges, a status page), so that iterating it while calls make breakers is safe.
   *
   * @example
   * const open = breakers.all().filter((b) => b.state === 'open').map((b) => b.instance);
   */
  all(): CircuitBreaker[] {
    return [...this.#breakers.values()];
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

  /** Drops and closes the breaker of a key; true if there was one. */
  forget(key: string): boolean {
    const breaker = this.#breakers.get(key);
    if (breaker === undefined) return false;
    this.#breakers.delete(key);
    void breaker.close();
    return true;
  }

  /**
   * Keeps only the breakers of `keys` (the instances discovery lists now) and closes the
   * others (and drops their saved states not yet used). Returns how many were dropped.
   */
  retain(keys: Iterable<string>): number {
    const live = keys instanceof Set ? (keys as ReadonlySet<string>) : new Set(keys);
    let dropped = 0;
    for (const key of [...this.#breakers.keys()]) {
      if (!live.has(key) && this.forget(key)) dropped++;
    }
    for (const key of [...this.#saved.keys()]) if (!live.has(key)) this.#saved.delete(key);
    return dropped;
  }

  /**
   * The saved state of every breaker held, by key, to make a registry from again (the `state`
   * option), e.g. across a restart.
   */
  toJSON(): Record<string, SavedCircuitState> {
    const saved: Record<string, SavedCircuitState> = {};
    for (const [key, breaker] of this.#breakers) saved[key] = breaker.toJSON();
    return saved;
  }

  /**
   * Closes every breaker (their timers stop); the registry makes no more. Done when it returns;
   * the promise is for {@link Closeable}. Safe to call twice.
   */
  close(): Promise<void> {
    this.#closed = true;
    for (const breaker of this.#breakers.values()) void breaker.close();
    this.#breakers.clear();
    this.#saved.clear();
    this.#stateChanged.clear();
    return Promise.resolve();
  }

  static {
    adoptClock = (registry, clock) => registry.#adopt(clock);
  }

  // Only before the first breaker is made, and only when no clock was given: a breaker keeps the
  // clock it was made with.
  #adopt(clock: Clock): void {
    if (this.#config.clock !== undefined || this.#breakers.size > 0) return;
    this.#config = { ...this.#config, clock };
    this.#lastSweep = clock.now();
  }

  #create(service: string, instance: string | undefined): CircuitBreaker {
    if (this.#closed) throw new ClosedError('circuit breaker registry');
    this.#sweep();
    const config = this.#policyOf(service, this.#overrides.get(service));
    const key = instance ?? service;
    const saved = this.#saved.get(key);
    if (saved !== undefined) this.#saved.delete(key);
    const breaker = new CircuitBreaker({
      ...config,
      service,
      ...(instance === undefined ? {} : { instance }),
      ...(saved === undefined ? {} : { state: saved }),
    });
    // Forward to the registry's listeners; the breaker's emitter is cleared when it is closed.
    breaker.onStateChanged((change) => this.#stateChanged.emit(change));
    this.#breakers.set(key, breaker);
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
