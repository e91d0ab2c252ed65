import type { CircuitState, Clock, InstanceMeta, ServiceInstance, Telemetry, TelemetryEvent } from '@trellis/core';
import type { ClientStatus, FaultRule, RetryBudgetStatus, ServiceClient } from '@trellis/client';
import type { InstanceLoad, RoutingRules } from '@trellis/loadbalancer';
import type { Discovery, RegistrationStatus } from '@trellis/registry';
import type { ServiceConfig } from '@trellis/config';
import type { z } from 'zod';
import type { RulesState } from '../control-plane/live-rules.js';

/** The states of a TrellisApp's life, in order. */
export type AppState = 'new' | 'starting' | 'running' | 'draining' | 'closed';

/** What the app's own instance advertises, as registered. */
export interface TrellisInstanceStatus {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  /** Where the app can be reached, e.g. http://127.0.0.1:41235. */
  readonly url: string;
  readonly tags: readonly string[];
  readonly meta: InstanceMeta;
}

/** The registration's state, as {@link RegistrationStatus} with null for what has not happened yet. */
export type TrellisRegistrationStatus = {
  readonly [K in keyof RegistrationStatus]-?: undefined extends RegistrationStatus[K]
    ? Exclude<RegistrationStatus[K], undefined> | null
    : RegistrationStatus[K];
};

/**
 * Calls to one instance seen by this app, from its telemetry (so for any strategy): counted
 * from the start while the app's telemetry has another listener (its metrics, on by default),
 * else from the first time its status was asked for, so that an app with metrics off pays
 * nothing for telemetry until someone looks.
 */
export interface RecentCalls {
  /** Attempts that ended. */
  readonly attempts: number;
  /** Of those, the ones that failed (an error or a 5xx answer). */
  readonly failures: number;
  /** Attempts started and not yet ended: calls in flight. */
  readonly outstanding: number;
  /** How long the last attempt took, in ms. */
  readonly lastLatencyMs: number | null;
  /** How the last attempt ended. */
  readonly lastOutcome: 'success' | 'failure' | 'cancelled' | null;
  /** The status of its answer, when one came. */
  readonly lastStatus: number | null;
  /** The clock's reading when it ended. */
  readonly lastAt: number | null;
}

/** One instance of a called service, as this app sees it. */
export interface TrellisTargetInstance {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: InstanceMeta;
  /**
   * Its health as discovery knows it from the registry: `passing`, `critical` (registered,
   * failing its checks), or `unknown` (kept from before a registry restart, not listed now).
   */
  readonly health: 'passing' | 'critical' | 'unknown';
  /** True when calls may go to it: discovery hands it to the client (healthy, kept, or all in panic). */
  readonly used: boolean;
  /** Its breaker's state; null while it has none (never called: closed). */
  readonly breaker: {
    readonly state: CircuitState;
    /** Until an open breaker lets a probe through, in ms. */
    readonly openRemainingMs: number;
    /** Calls and failures in the breaker's window (while closed). */
    readonly calls: number;
    readonly failures: number;
  } | null;
  /** What the strategy knows of its load (P2C's score and latency estimate); null when the strategy keeps nothing. */
  readonly load: InstanceLoad | null;
  /** Calls this app made to it (see {@link RecentCalls} for since when), whatever the strategy; null when none was seen. */
  readonly recent: RecentCalls | null;
}

/** Discovery's view of a called service. */
export interface TrellisDiscoveryStatus {
  /** False from a failed query of the registry until one succeeds again: calls go on with the last known instances. */
  readonly registryReachable: boolean;
  /** The clock's reading when the instances calls use last changed. */
  readonly updatedAt: number | null;
  /** True while fewer than the panic threshold's share are healthy, so calls go to all registered ones. */
  readonly panic: boolean;
  /** True when the instances came from the failover file and the registry has not answered since. */
  readonly fromFailoverFile: boolean;
  readonly healthy: number;
  readonly unhealthy: number;
}

/** One client of the app: a called service and how its calls are governed. */
export interface TrellisClientStatus {
  /** The target service. */
  readonly service: string;
  /** The load-balancing strategy's name. */
  readonly strategy: string;
  /** The call stack's stage names, outermost first. */
  readonly stages: readonly string[];
  /** The retry budget left; null without one. */
  readonly retryBudget: RetryBudgetStatus | null;
  /** Routing rules in force; null with a strategy object of the user's own. */
  readonly routingRules: RoutingRules | null;
  /** The route the last pick took, when rules applied. */
  readonly lastRoute: string | null;
  /** Fault-injection rules in force. */
  readonly faultRules: readonly FaultRule[];
  /** True while the load balancer calls ejected instances because every one is ejected. */
  readonly panic: boolean;
  /** Discovery's view; null until the first call asked for the service. */
  readonly discovery: TrellisDiscoveryStatus | null;
  /** Its instances, by id: at most 200, the rest counted in `instancesLeftOut`. */
  readonly instances: readonly TrellisTargetInstance[];
  readonly instancesLeftOut: number;
}

/**
 * What `GET /trellis` answers (as JSON), and `app.describe()` returns: the in-process governance
 * of one TrellisApp. Stable: fields are added, never renamed or removed without a major
 * version. Times are readings of the app's clock in ms (the epoch's, with the system clock);
 * `now` is the reading the status was taken at, so that ages are `now - updatedAt`.
 */
export interface TrellisStatus {
  readonly service: string;
  readonly state: AppState;
  /** The clock's reading when this status was taken. */
  readonly now: number;
  /** The registered instance; null before start. */
  readonly instance: TrellisInstanceStatus | null;
  /** The registration's state (registered when, last heartbeat, failures); null before start. */
  readonly registration: TrellisRegistrationStatus | null;
  /** One per called service, by name. */
  readonly clients: readonly TrellisClientStatus[];
  /**
   * What this instance runs of the control plane's rules: one entry per service it follows (those
   * it calls and its own), with the version in force, the dry run beside it and the last refusal;
   * null when the app follows no rules (`controlPlane: false`, or a registry without KV).
   */
  readonly rules: readonly RulesState[] | null;
  /**
   * The service's typed settings in force, each with the layer it came from (values of keys that
   * look secret, like `dbPassword` or `apiToken`, shown as "***", as Spring's /actuator/env does),
   * and the values refused; null without a `config` option.
   */
  readonly config: TrellisConfigStatus | null;
}

/** The settings part of {@link TrellisStatus}. */
export interface TrellisConfigStatus {
  readonly entries: ReadonlyArray<{ readonly key: string; readonly value: unknown; readonly source: string }>;
  readonly refusals: ReadonlyArray<{ readonly key: string; readonly source: string; readonly reason: string }>;
}

// Spring Boot's default sanitized keys.
const secretKey = /password|secret|token|credential|key$/i;

/** What {@link describeApp} reads; the app hands it its private parts. */
export interface AppView {
  readonly service: string;
  readonly state: AppState;
  readonly clock: Clock;
  readonly instance: ServiceInstance | undefined;
  readonly url: string | undefined;
  readonly registration: RegistrationStatus | undefined;
  readonly clients: Iterable<ServiceClient>;
  readonly discovery: Discovery;
  readonly recent: RecentCallsTracker | undefined;
  readonly rules: readonly RulesState[] | undefined;
  readonly config: ServiceConfig<z.ZodObject> | undefined;
}

/**
 * The status of an app, from what its parts describe: discovery's view of each called service,
 * each client's stack, breakers and strategy, and the calls seen.
 */
export function describeApp(app: AppView): TrellisStatus {
  const clients = [...app.clients].sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0));
  return {
    service: app.service,
    state: app.state,
    now: app.clock.now(),
    instance:
      app.instance === undefined || app.url === undefined
        ? null
        : {
            id: app.instance.id,
            address: app.instance.address,
            port: app.instance.port,
            url: app.url,
            tags: app.instance.tags,
            meta: app.instance.meta,
          },
    registration:
      app.registration === undefined
        ? null
        : {
            ...app.registration,
            registeredAt: app.registration.registeredAt ?? null,
            lastHeartbeatAt: app.registration.lastHeartbeatAt ?? null,
            lastError: app.registration.lastError ?? null,
          },
    clients: clients.map((client) => describeClient(client, app.discovery, app.recent)),
    rules: app.rules ?? null,
    config:
      app.config === undefined
        ? null
        : {
            entries: app.config
              .entries()
              .map((e) => ({ key: e.key, source: e.source, value: secretKey.test(e.key) ? '***' : e.value })),
            refusals: app.config.refusals,
          },
  };
}

function describeClient(
  client: ServiceClient,
  discovery: Discovery,
  recent: RecentCallsTracker | undefined,
): TrellisClientStatus {
  const view = discovery.describe(client.service);
  const healthy = new Set(view?.healthy.map((i) => i.id));
  const unhealthy = new Set(view?.unhealthy.map((i) => i.id));
  const used = new Set(view?.instances?.map((i) => i.id));
  // Every instance discovery knows of: the registry's, and those it still hands out.
  const known = new Map<string, ServiceInstance>();
  for (const list of [view?.healthy, view?.unhealthy, view?.instances]) {
    for (const instance of list ?? []) if (!known.has(instance.id)) known.set(instance.id, instance);
  }
  const instances = [...known.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const status: ClientStatus = client.describe(instances);
  return {
    service: status.service,
    strategy: status.strategy,
    stages: status.stages,
    retryBudget: status.retryBudget ?? null,
    routingRules: status.routingRules ?? null,
    lastRoute: status.lastRoute ?? null,
    faultRules: status.faultRules,
    panic: status.panic,
    discovery:
      view === undefined
        ? null
        : {
            registryReachable: view.registryReachable,
            updatedAt: view.updatedAt ?? null,
            panic: view.panic,
            fromFailoverFile: view.fromFailoverFile,
            healthy: view.healthy.length,
            unhealthy: view.unhealthy.length,
          },
    instances: status.instances.map((described, i) => {
      const instance = instances[i] as ServiceInstance;
      const breaker = described.breaker;
      return {
        id: instance.id,
        address: instance.address,
        port: instance.port,
        tags: instance.tags,
        meta: instance.meta,
        health: healthy.has(instance.id) ? 'passing' : unhealthy.has(instance.id) ? 'critical' : 'unknown',
        used: used.has(instance.id),
        breaker:
          breaker === undefined
            ? null
            : {
                state: breaker.state,
                openRemainingMs: breaker.openRemainingMs,
                calls: breaker.calls,
                failures: breaker.failures,
              },
        load: described.load ?? null,
        recent: recent?.get(instance.id) ?? null,
      };
    }),
    instancesLeftOut: status.instancesLeftOut,
  };
}

interface Tally {
  attempts: number;
  failures: number;
  outstanding: number;
  lastLatencyMs: number | null;
  lastOutcome: 'success' | 'failure' | 'cancelled' | null;
  lastStatus: number | null;
  lastAt: number | null;
}

/** Most instances whose calls are tallied; past it, the oldest idle one is forgotten. */
export const maxTrackedInstances = 1_024;

/**
 * Tallies the attempts an app's clients make, by instance, from the app's telemetry: the last
 * latency and calls in flight whatever the strategy (round robin keeps neither). Bounded by
 * {@link maxTrackedInstances}.
 */
export class RecentCallsTracker {
  readonly #tallies = new Map<string, Tally>();
  readonly #clock: Clock;
  readonly #subscription: { dispose(): void };

  constructor(telemetry: Telemetry, clock: Clock) {
    this.#clock = clock;
    this.#subscription = telemetry.onEvent((event) => this.#record(event));
  }

  /** The tally of calls to `instance`, or undefined when none was seen. */
  get(instance: string): RecentCalls | undefined {
    const tally = this.#tallies.get(instance);
    return tally === undefined ? undefined : { ...tally };
  }

  /** Instances tallied now. */
  get size(): number {
    return this.#tallies.size;
  }

  /** Stops listening. */
  dispose(): void {
    this.#subscription.dispose();
  }

  #record(event: TelemetryEvent): void {
    if (event.type === 'attempt-started') {
      this.#tally(event.instance).outstanding++;
    } else if (event.type === 'attempt-ended') {
      const tally = this.#tally(event.instance);
      if (tally.outstanding > 0) tally.outstanding--;
      tally.attempts++;
      if (event.outcome === 'failure') tally.failures++;
      tally.lastLatencyMs = event.durationMs;
      tally.lastOutcome = event.outcome;
      tally.lastStatus = event.status ?? null;
      tally.lastAt = this.#clock.now();
    }
  }

  #tally(instance: string): Tally {
    let tally = this.#tallies.get(instance);
    if (tally !== undefined) return tally;
    if (this.#tallies.size >= maxTrackedInstances) this.#evict();
    tally = {
      attempts: 0,
      failures: 0,
      outstanding: 0,
      lastLatencyMs: null,
      lastOutcome: null,
      lastStatus: null,
      lastAt: null,
    };
    this.#tallies.set(instance, tally);
    return tally;
  }

  // Instances come and go with deployments: the first one inserted with nothing in flight
  // goes (or the first one at all, so that the map never grows past its bound).
  #evict(): void {
    let victim: string | undefined;
    for (const [id, tally] of this.#tallies) {
      victim ??= id;
      if (tally.outstanding === 0) {
        victim = id;
        break;
      }
    }
    if (victim !== undefined) this.#tallies.delete(victim);
  }
}
