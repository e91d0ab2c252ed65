import type { CircuitState, Clock } from '@trellis/core';
import type { GaugeSample } from './cells.js';
import type { LabelCap } from './label-values.js';

/*
 * The state gauges read the objects that hold the state when Prometheus scrapes, instead of
 * replaying their events: a breaker that never changed state is shown too, one that was dropped
 * disappears, and the age of a view is the clock's reading now. The shapes below are the least
 * this package reads of @trellis/registry and @trellis/resilience, so that it imports neither.
 */

/** What the discovery gauges read of a watched service: a `Discovery`'s `describe(service)`. */
export interface WatchedServiceStatus {
  readonly healthy: readonly unknown[];
  readonly unhealthy: readonly unknown[];
  readonly panic: boolean;
  readonly registryReachable: boolean;
  /** The clock's reading when the instances calls use last changed; undefined before the first view. */
  readonly updatedAt: number | undefined;
}

/** What the discovery gauges read: a `Discovery` from @trellis/registry. */
export interface DiscoverySource {
  readonly services: readonly string[];
  describe(service: string): WatchedServiceStatus | undefined;
}

/** What the registration gauge reads: a `SelfRegistration` from @trellis/registry. */
export interface RegistrationSource {
  describe(): { readonly state: 'new' | 'running' | 'closed'; readonly consecutiveFailures: number };
}

/** What the breaker gauge reads: a `CircuitBreakerRegistry` from @trellis/resilience. */
export interface BreakerSource {
  all(): Iterable<{ readonly service: string; readonly instance: string | undefined; readonly state: CircuitState }>;
}

/** The objects {@link TrellisMetrics.watch} reads at each scrape; any of them may be left out. */
export interface WatchedSources {
  readonly discovery?: DiscoverySource;
  readonly registration?: RegistrationSource;
  readonly breakers?: BreakerSource;
}

/**
 * A registration's state as the gauge shows it: `failing` while it runs but its last heartbeat
 * (or registration again) failed, so that the registry may expire the instance.
 */
export type RegistrationGaugeState = 'new' | 'registered' | 'failing' | 'closed';

export const registrationStates: readonly RegistrationGaugeState[] = ['new', 'registered', 'failing', 'closed'];
export const circuitStates: readonly CircuitState[] = ['closed', 'open', 'half-open', 'isolated'];

function registrationState(source: RegistrationSource): RegistrationGaugeState {
  const { state, consecutiveFailures } = source.describe();
  if (state === 'running') return consecutiveFailures > 0 ? 'failing' : 'registered';
  return state;
}

/** The sources being watched, and the gauges' values computed from them. */
export class Watched {
  readonly #sources = new Set<WatchedSources>();
  readonly #clock: Clock;
  readonly #services: LabelCap;
  readonly #instances: LabelCap;

  constructor(clock: Clock, services: LabelCap, instances: LabelCap) {
    this.#clock = clock;
    this.#services = services;
    this.#instances = instances;
  }

  add(sources: WatchedSources): () => void {
    this.#sources.add(sources);
    return () => this.#sources.delete(sources);
  }

  get watchesBreakers(): boolean {
    for (const s of this.#sources) if (s.breakers !== undefined) return true;
    return false;
  }

  *#statuses(): Generator<[string, WatchedServiceStatus]> {
    for (const { discovery } of this.#sources) {
      if (discovery === undefined) continue;
      for (const service of discovery.services) {
        const status = discovery.describe(service);
        if (status !== undefined) yield [this.#services.value(service), status];
      }
    }
  }

  *instances(): Generator<GaugeSample> {
    for (const [service, status] of this.#statuses()) {
      yield { labels: { service, health: 'healthy' }, value: status.healthy.length };
      yield { labels: { service, health: 'unhealthy' }, value: status.unhealthy.length };
    }
  }

  *panic(): Generator<GaugeSample> {
    for (const [service, status] of this.#statuses()) yield { labels: { service }, value: status.panic ? 1 : 0 };
  }

  *updateAge(): Generator<GaugeSample> {
    const now = this.#clock.now();
    for (const [service, status] of this.#statuses()) {
      if (status.updatedAt !== undefined) {
        yield { labels: { service }, value: Math.max(0, now - status.updatedAt) / 1000 };
      }
    }
  }

  // One figure for "can this process reach its registry": 0 when any watch's last query or the
  // registration's last heartbeat failed; absent when nothing that talks to a registry is watched.
  *reachable(): Generator<GaugeSample> {
    let known = false;
    let reachable = true;
    for (const [, status] of this.#statuses()) {
      known = true;
      reachable &&= status.registryReachable;
    }
    for (const { registration } of this.#sources) {
      if (registration === undefined) continue;
      const state = registrationState(registration);
      if (state === 'new' || state === 'closed') continue;
      known = true;
      reachable &&= state === 'registered';
    }
    if (known) yield { labels: {}, value: reachable ? 1 : 0 };
  }

  // One app has one registration; were two watched, the value is how many are in the state.
  registration(): GaugeSample[] {
    const counts = new Map<RegistrationGaugeState, number>();
    for (const { registration } of this.#sources) {
      if (registration === undefined) continue;
      const current = registrationState(registration);
      for (const state of registrationStates) counts.set(state, (counts.get(state) ?? 0) + (state === current ? 1 : 0));
    }
    return [...counts].map(([state, value]) => ({ labels: { state }, value }));
  }

  // Two breakers whose labels were capped to `_other` add up: the value is then how many are in the state.
  circuitStates(): GaugeSample[] {
    const series = new Map<string, { labels: Record<string, string>; value: number }>();
    for (const { breakers } of this.#sources) {
      if (breakers === undefined) continue;
      for (const breaker of breakers.all()) {
        const service = this.#services.value(breaker.service);
        // A per-service breaker has no instance: the label is empty, which Prometheus reads as absent.
        const instance = breaker.instance === undefined ? '' : this.#instances.value(breaker.instance);
        for (const state of circuitStates) {
          const key = `${service}\u0000${instance}\u0000${state}`;
          let entry = series.get(key);
          if (entry === undefined) {
            entry = { labels: { service, target_instance: instance, state }, value: 0 };
            series.set(key, entry);
          }
          if (breaker.state === state) entry.value++;
        }
      }
    }
    return [...series.values()];
  }
}
