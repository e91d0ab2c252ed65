import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ConfigError, type CircuitState, type Disposable, type Event, type TelemetryEvent } from '@trellis/core';
import { LabelCap, methodLabel, statusClass, unknownRoute } from './label-values.js';

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
   * `reason`, `cause`) may take; past it the value is `_other`. Default 500.
   */
  readonly maxLabelValues?: number;
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

const states: readonly CircuitState[] = ['closed', 'open', 'half-open'];

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

  readonly #clientDuration: Histogram<'service' | 'method' | 'route' | 'status_class' | 'outcome'>;
  readonly #serverDuration: Histogram<'method' | 'route' | 'status_class'>;
  readonly #circuitState: Gauge<'service' | 'target_instance' | 'state'>;
  readonly #circuitTransitions: Counter<'service' | 'target_instance' | 'from' | 'to'>;
  readonly #picks: Counter<'service' | 'target_instance'>;
  readonly #retries: Counter<'service' | 'reason'>;
  readonly #retriesRefused: Counter<'service' | 'reason'>;
  readonly #hedges: Counter<'service'>;
  readonly #timeouts: Counter<'service' | 'scope'>;
  readonly #limitRejections: Counter<'service' | 'limit'>;
  readonly #faults: Counter<'service' | 'kind'>;
  readonly #fallbacks: Counter<'service' | 'cause'>;
  readonly #services: LabelCap;
  readonly #instances: LabelCap;
  readonly #routes: LabelCap;
  readonly #reasons: LabelCap;
  readonly #subscriptions = new Set<Disposable>();

  constructor(options: TrellisMetricsOptions = {}) {
    const max = options.maxLabelValues ?? 500;
    if (!(Number.isInteger(max) && max > 0)) {
      throw new ConfigError('maxLabelValues', `must be a positive integer, got ${max}`);
    }
    this.#services = new LabelCap(max);
    this.#instances = new LabelCap(max);
    this.#routes = new LabelCap(max);
    this.#reasons = new LabelCap(max);
    const registry = options.registry ?? new Registry();
    this.registry = registry;
    const registers = [registry];
    const buckets = [...durationBuckets];
    this.#clientDuration = new Histogram({
      name: 'http_client_request_duration_seconds',
      help: 'Duration of HTTP requests (attempts) a governed client sent, by target service and route template.',
      labelNames: ['service', 'method', 'route', 'status_class', 'outcome'],
      buckets,
      registers,
    });
    this.#serverDuration = new Histogram({
      name: 'http_server_request_duration_seconds',
      help: 'Duration of HTTP requests this service served, by route template.',
      labelNames: ['method', 'route', 'status_class'],
      buckets,
      registers,
    });
    this.#circuitState = new Gauge({
      name: 'trellis_circuit_state',
      help: 'Circuit breaker state: 1 for the state the breaker is in, 0 for the others.',
      labelNames: ['service', 'target_instance', 'state'],
      registers,
    });
    this.#circuitTransitions = new Counter({
      name: 'trellis_circuit_transitions_total',
      help: 'Circuit breaker state changes.',
      labelNames: ['service', 'target_instance', 'from', 'to'],
      registers,
    });
    this.#picks = new Counter({
      name: 'trellis_instance_picks_total',
      help: 'Instances chosen for an attempt by the load balancer.',
      labelNames: ['service', 'target_instance'],
      registers,
    });
    this.#retries = new Counter({
      name: 'trellis_retries_total',
      help: 'Failed attempts that were scheduled to be tried again.',
      labelNames: ['service', 'reason'],
      registers,
    });
    this.#retriesRefused = new Counter({
      name: 'trellis_retries_refused_total',
      help: 'Retryable failures not retried because the retry budget was spent.',
      labelNames: ['service', 'reason'],
      registers,
    });
    this.#hedges = new Counter({
      name: 'trellis_hedges_total',
      help: 'Hedged (second) attempts sent because the first was slow.',
      labelNames: ['service'],
      registers,
    });
    this.#timeouts = new Counter({
      name: 'trellis_timeouts_total',
      help: "Time limits that ran out: an attempt's (scope attempt) or a whole call's (scope deadline).",
      labelNames: ['service', 'scope'],
      registers,
    });
    this.#limitRejections = new Counter({
      name: 'trellis_limit_rejections_total',
      help: 'Calls refused by a rate limit (limit rate) or a concurrency limit, a bulkhead (limit concurrency).',
      labelNames: ['service', 'limit'],
      registers,
    });
    this.#faults = new Counter({
      name: 'trellis_faults_injected_total',
      help: 'Attempts delayed or aborted by fault injection.',
      labelNames: ['service', 'kind'],
      registers,
    });
    this.#fallbacks = new Counter({
      name: 'trellis_fallbacks_total',
      help: 'Calls a fallback answered, by the code of the failure it answered for.',
      labelNames: ['service', 'cause'],
      registers,
    });
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

  /** Counts one telemetry event; what {@link subscribe} calls for each. */
  record(event: TelemetryEvent): void {
    switch (event.type) {
      case 'attempt-ended':
        this.#clientDuration.observe(
          {
            service: this.#services.value(event.service),
            method: methodLabel(event.method),
            route: event.template === undefined ? unknownRoute : this.#routes.value(event.template),
            status_class: statusClass(event.status),
            outcome: event.outcome,
          },
          event.durationMs / 1000,
        );
        break;
      case 'instance-picked':
        this.#picks.inc({
          service: this.#services.value(event.service),
          target_instance: this.#instances.value(event.instance),
        });
        break;
      case 'circuit-state-changed': {
        const service = this.#services.value(event.service);
        // A per-service breaker has no instance: the label is empty, which Prometheus reads as absent.
        const target_instance = event.instance === undefined ? '' : this.#instances.value(event.instance);
        for (const state of states) {
          this.#circuitState.set({ service, target_instance, state }, state === event.to ? 1 : 0);
        }
        this.#circuitTransitions.inc({ service, target_instance, from: event.from, to: event.to });
        break;
      }
      case 'retry-scheduled':
        this.#retries.inc({ service: this.#services.value(event.service), reason: this.#reasons.value(event.reason) });
        break;
      case 'retry-refused':
        this.#retriesRefused.inc({ service: this.#services.value(event.service), reason: event.reason });
        break;
      case 'hedge-sent':
        this.#hedges.inc({ service: this.#services.value(event.service) });
        break;
      case 'timed-out':
        this.#timeouts.inc({ service: this.#services.value(event.service), scope: event.scope });
        break;
      case 'limit-rejected':
        this.#limitRejections.inc({ service: this.#services.value(event.service), limit: event.limit });
        break;
      case 'fault-injected':
        this.#faults.inc({ service: this.#services.value(event.service), kind: event.kind });
        break;
      case 'fallback-answered':
        this.#fallbacks.inc({ service: this.#services.value(event.service), cause: this.#reasons.value(event.cause) });
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
      {
        method: methodLabel(request.method),
        route: request.template === undefined ? unknownRoute : this.#routes.value(request.template),
        status_class: statusClass(request.status),
      },
      request.durationMs / 1000,
    );
  }

  /** Stops every subscription made with {@link subscribe}; the series keep their values. */
  dispose(): void {
    for (const subscription of this.#subscriptions) subscription.dispose();
    this.#subscriptions.clear();
  }
}
