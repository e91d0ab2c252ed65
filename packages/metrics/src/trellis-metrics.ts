import { collectDefaultMetrics, Registry } from 'prom-client';
import { ConfigError, systemClock, type Clock, type Disposable, type Event, type TelemetryEvent } from '@trellis/core';
import { CounterCells, HistogramCells, ScrapedGauge, type GaugeSample } from './cells.js';
import { LabelCap, methodLabel, statusClass, unknownRoute } from './label-values.js';
import { circuitStates, Watched, type WatchedSources } from './watched-sources.js';

/**
 * The bucket bounds of both request duration histograms, in seconds: OpenTelemetry's advice for
 * `http.client.request.duration` and `http.server.request.duration`.
 */
export const durationBuckets: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];

export interface TrellisMetricsOptions {
  /** Where the series are registered; default a new prom-client `Registry` of their own. */
  readonly registry?: Registry;
  /** Registers prom-client's process metrics (CPU, memory, GC, event-loop lag) too; default true. */
  readonly processMetrics?: boolean;
  /**
   * Distinct values each label fed from outside the code (`service`, `target_instance`, `route`,
   * `reason`, `cause`, `limit`) may take; past it the value is `_other`. Default 500.
   */
  readonly maxLabelValues?: number;
  /** The time the age gauges are computed from at each scrape; default the system clock. */
  readonly clock?: Clock;
}

/** One request a server answered, as {@link TrellisMetrics.recordServerRequest} takes it. */
export interface ServedRequest {
  readonly method: string;
  /** The route template that matched ("/users/:id"); undefined when none did (a 404). */
  readonly template: string | undefined;
  readonly status: number;
  readonly durationMs: number;
}

/** What {@link TrellisMetrics.subscribe} listens to: a `Telemetry`, a `ServiceClient`, a `TrellisApp`'s telemetry. */
export interface TelemetrySource {
  readonly onEvent: Event<TelemetryEvent>;
}

/**
 * The standard metrics of a Trellis service on prom-client: a histogram of attempts to other
 * services and of requests served, breaker states and transitions, retries, hedges, timeouts,
 * limit rejections and picks per instance, all fed from telemetry events, so that no policy
 * knows about Prometheus. Every label is bounded: `route` is a route template or `_unknown`,
 * `method` one of HTTP's or `_OTHER`, and the labels fed from outside the code are capped by
 * `maxLabelValues`.
 *
 * @throws ConfigError when `maxLabelValues` is not a positive integer.
 * @example
 * const metrics = new TrellisMetrics();
 * const users = new ServiceClient({ service: 'users', discovery });
 * metrics.subscribe(users);
 * await users.get('/users/42', { template: '/users/:id' });
 * const text = await metrics.registry.metrics(); // Prometheus's text format
 */
export class TrellisMetrics implements Disposable {
  /** The prom-client registry holding the series: serve `registry.metrics()` with `registry.contentType`. */
  readonly registry: Registry;

  // Label names in the order the cells are keyed by; see the help texts for what each counts.
  readonly #clientDuration: HistogramCells; // service, method, route, status_class, outcome
  readonly #serverDuration: HistogramCells; // method, route, status_class
  readonly #circuitState: CounterCells; // service, target_instance, state
  readonly #circuitTransitions: CounterCells; // service, target_instance, from, to
  readonly #picks: CounterCells; // service, target_instance
  readonly #retries: CounterCells; // service, reason
  readonly #retriesRefused: CounterCells; // service, reason
  readonly #hedges: CounterCells; // service
  readonly #timeouts: CounterCells; // service, scope
  readonly #limitRejections: CounterCells; // service, limit
  readonly #rateLimitFallback: CounterCells; // limit (a gauge)
  readonly #localDecisions: CounterCells; // limit, decision
  readonly #faults: CounterCells; // service, kind
  readonly #fallbacks: CounterCells; // service, cause
  readonly #rulesVersion: CounterCells; // service (a gauge)
  readonly #rulesRefusals: CounterCells; // service
  readonly #dryRuns: CounterCells; // service, effect
  readonly #configRefusals: CounterCells; // key
  readonly #services: LabelCap;
  readonly #instances: LabelCap;
  readonly #routes: LabelCap;
  readonly #reasons: LabelCap;
  readonly #limits: LabelCap;
  readonly #subscriptions = new Set<Disposable>();
  readonly #watched: Watched;

  constructor(options: TrellisMetricsOptions = {}) {
    const max = options.maxLabelValues ?? 500;
    if (!(Number.isInteger(max) && max > 0)) {
      throw new ConfigError('maxLabelValues', `must be a positive integer, got ${max}`);
    }
    this.#services = new LabelCap(max);
    this.#instances = new LabelCap(max);
    this.#routes = new LabelCap(max);
    this.#reasons = new LabelCap(max);
    this.#limits = new LabelCap(max);
    const registry = options.registry ?? new Registry();
    this.registry = registry;
    this.#clientDuration = new HistogramCells(
      'http_client_request_duration_seconds',
      'Duration of HTTP requests (attempts) a governed client sent, by target service and route template.',
      ['service', 'method', 'route', 'status_class', 'outcome'],
      durationBuckets,
    ).register(registry);
    this.#serverDuration = new HistogramCells(
      'http_server_request_duration_seconds',
      'Duration of HTTP requests this service served, by route template.',
      ['method', 'route', 'status_class'],
      durationBuckets,
    ).register(registry);
    const watched = new Watched(options.clock ?? systemClock, this.#services, this.#instances);
    this.#watched = watched;
    // Fed from events until a breaker registry is watched; then read from it at each scrape.
    this.#circuitState = new CounterCells(
      'trellis_circuit_state',
      '',
      ['service', 'target_instance', 'state'],
      'gauge',
    );
    const gauge = (name: string, help: string, read: () => Iterable<GaugeSample>): void => {
      new ScrapedGauge(name, help, read).register(registry);
    };
    gauge('trellis_circuit_state', 'Circuit breaker state: 1 for the state the breaker is in, 0 for the others.', () =>
      watched.watchesBreakers ? watched.circuitStates() : this.#circuitState.values(),
    );
    gauge(
      'trellis_discovery_instances',
      "Instances of a called service in the registry's last answer, by health (healthy: passing their checks).",
      () => watched.instances(),
    );
    gauge(
      'trellis_discovery_panic',
      'Discovery panic mode: 1 while too few instances are healthy and calls go to all registered ones.',
      () => watched.panic(),
    );
    gauge(
      'trellis_discovery_update_age_seconds',
      'Seconds since the instances calls to a service use last changed (the first answer included).',
      () => watched.updateAge(),
    );
    gauge(
      'trellis_registry_reachable',
      "1 while the registry answers this process's watches and heartbeats, 0 once one of them failed.",
      () => watched.reachable(),
    );
    gauge(
      'trellis_registration_state',
      "This instance's registration: 1 for the state it is in (new, registered, failing, closed), 0 for the others.",
      () => watched.registration(),
    );
    const counter = (name: string, help: string, labelNames: readonly string[]): CounterCells =>
      new CounterCells(name, help, labelNames).register(registry);
    this.#circuitTransitions = counter('trellis_circuit_transitions_total', 'Circuit breaker state changes.', [
      'service',
      'target_instance',
      'from',
      'to',
    ]);
    this.#picks = counter('trellis_instance_picks_total', 'Instances chosen for an attempt by the load balancer.', [
      'service',
      'target_instance',
    ]);
    this.#retries = counter('trellis_retries_total', 'Failed attempts that were scheduled to be tried again.', [
      'service',
      'reason',
    ]);
    this.#retriesRefused = counter(
      'trellis_retries_refused_total',
      'Retryable failures not retried because the retry budget was spent.',
      ['service', 'reason'],
    );
    this.#hedges = counter('trellis_hedges_total', 'Hedged (second) attempts sent because the first was slow.', [
      'service',
    ]);
    this.#timeouts = counter(
      'trellis_timeouts_total',
      "Time limits that ran out: an attempt's (scope attempt) or a whole call's (scope deadline).",
      ['service', 'scope'],
    );
    this.#limitRejections = counter(
      'trellis_limit_rejections_total',
      'Calls refused by a rate limit (limit rate) or a concurrency limit, a bulkhead (limit concurrency).',
      ['service', 'limit'],
    );
    this.#rateLimitFallback = new CounterCells(
      'trellis_ratelimit_fallback',
      'A cluster rate limit: 1 while this instance decides from its local share of the limit (the store, Redis, is away or slower than the decision budget), 0 while the shared limit applies.',
      ['limit'],
      'gauge',
    ).register(registry);
    this.#localDecisions = counter(
      'trellis_ratelimit_fallback_decisions_total',
      "Decisions of a cluster rate limit taken from this instance's local share while its store was away or slow, by decision (granted, refused).",
      ['limit', 'decision'],
    );
    this.#faults = counter('trellis_faults_injected_total', 'Attempts delayed or aborted by fault injection.', [
      'service',
      'kind',
    ]);
    this.#fallbacks = counter(
      'trellis_fallbacks_total',
      'Calls a fallback answered, by the code of the failure it answered for.',
      ['service', 'cause'],
    );
    this.#rulesVersion = new CounterCells(
      'trellis_rules_version',
      "The version of a service's rules (trellis/rules/<service>) this instance runs; 0 while none is set.",
      ['service'],
      'gauge',
    ).register(registry);
    this.#rulesRefusals = counter(
      'trellis_rules_refusals_total',
      "Versions of a service's rules refused here (invalid, or a field a client cannot apply); the last good ones stay.",
      ['service'],
    );
    this.#dryRuns = counter(
      'trellis_rules_dry_run_total',
      "What a dry run of a service's rules would have done (effect route: sent elsewhere; fault; limit), changing nothing.",
      ['service', 'effect'],
    );
    this.#configRefusals = counter(
      'trellis_config_refusals_total',
      'Configuration values refused (failing the schema, or an unknown key); the last good value stays.',
      ['key'],
    );
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  }

  /**
   * Feeds the metrics from `source`'s telemetry: a `Telemetry`, a `ServiceClient`, or
   * `app.telemetry` for every client of an app. Dispose the result, or this object, to stop.
   */
  subscribe(source: TelemetrySource): Disposable {
    const subscription = source.onEvent((event) => this.record(event));
    this.#subscriptions.add(subscription);
    return {
      dispose: () => {
        subscription.dispose();
        this.#subscriptions.delete(subscription);
      },
    };
  }

  /**
   * Shows the state of `sources` in gauges computed at each scrape: the instances and panic of
   * every service `discovery` watches, the age of its last change, registry reachability, the
   * `registration`'s state, and every breaker `breakers` holds (in place of the breaker gauge fed
   * from events, so that a breaker shows before its first change and goes when it is dropped).
   * Dispose the result, or this object, to stop.
   *
   * @example
   * const trellisMetrics = new TrellisMetrics();
   * trellisMetrics.watch({ breakers }); // every breaker, whether or not it ever changed state
   */
  watch(sources: WatchedSources): Disposable {
    const remove = this.#watched.add(sources);
    const watching = { dispose: remove };
    this.#subscriptions.add(watching);
    return {
      dispose: () => {
        remove();
        this.#subscriptions.delete(watching);
      },
    };
  }

  /** Counts one telemetry event; what {@link subscribe} calls for each. */
  record(event: TelemetryEvent): void {
    switch (event.type) {
      case 'attempt-ended':
        this.#clientDuration.observe(
          event.durationMs / 1000,
          this.#services.value(event.service),
          methodLabel(event.method),
          event.template === undefined ? unknownRoute : this.#routes.value(event.template),
          statusClass(event.status),
          event.outcome,
        );
        break;
      case 'instance-picked':
        this.#picks.at(this.#services.value(event.service), this.#instances.value(event.instance)).value++;
        break;
      case 'circuit-state-changed': {
        const service = this.#services.value(event.service);
        // A per-service breaker has no instance: the label is empty, which Prometheus reads as absent.
        const instance = event.instance === undefined ? '' : this.#instances.value(event.instance);
        for (const state of circuitStates)
          this.#circuitState.at(service, instance, state).value = state === event.to ? 1 : 0;
        this.#circuitTransitions.at(service, instance, event.from, event.to).value++;
        break;
      }
      case 'retry-scheduled':
        this.#retries.at(this.#services.value(event.service), this.#reasons.value(event.reason)).value++;
        break;
      case 'retry-refused':
        this.#retriesRefused.at(this.#services.value(event.service), event.reason).value++;
        break;
      case 'hedge-sent':
        this.#hedges.at(this.#services.value(event.service)).value++;
        break;
      case 'timed-out':
        this.#timeouts.at(this.#services.value(event.service), event.scope).value++;
        break;
      case 'limit-rejected':
        this.#limitRejections.at(this.#services.value(event.service), event.limit).value++;
        break;
      case 'rate-limit-fallback-changed':
        this.#rateLimitFallback.at(this.#limits.value(event.limit)).value = event.fallback ? 1 : 0;
        break;
      case 'rate-limit-decided-locally':
        this.#localDecisions.at(this.#limits.value(event.limit), event.granted ? 'granted' : 'refused').value++;
        break;
      case 'fault-injected':
        this.#faults.at(this.#services.value(event.service), event.kind).value++;
        break;
      case 'fallback-answered':
        this.#fallbacks.at(this.#services.value(event.service), this.#reasons.value(event.cause)).value++;
        break;
      case 'rules-applied':
        this.#rulesVersion.at(this.#services.value(event.service)).value = event.version ?? 0;
        break;
      case 'rules-refused':
        this.#rulesRefusals.at(this.#services.value(event.service)).value++;
        break;
      case 'dry-run':
        this.#dryRuns.at(this.#services.value(event.service), event.effect).value++;
        break;
      case 'config-refused':
        this.#configRefusals.at(this.#reasons.value(event.key)).value++;
        break;
      case 'attempt-started':
        break;
    }
  }

  /**
   * Counts one request a server answered, under its route template (`_unknown` when no route
   * matched, so that a scan of random paths adds one series, not one per path).
   */
  recordServerRequest(request: ServedRequest): void {
    this.#serverDuration.observe(
      request.durationMs / 1000,
      methodLabel(request.method),
      request.template === undefined ? unknownRoute : this.#routes.value(request.template),
      statusClass(request.status),
    );
  }

  /** Stops every subscription made with {@link subscribe} and every {@link watch}; the counters keep their values. */
  dispose(): void {
    for (const subscription of this.#subscriptions) subscription.dispose();
    this.#subscriptions.clear();
  }
}
