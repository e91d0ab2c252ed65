import 'reflect-metadata';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { Container } from 'inversify';
import {
  ClosedError,
  sleep,
  systemClock,
  Telemetry,
  type Clock,
  type Disposable,
  type ServiceInstance,
  type Timer,
} from '@trellis/core';
import {
  CircuitBreakerRegistry,
  defaultFallbackCodes,
  Fallback,
  TimeoutError,
  type AnyRateLimiter,
  type FallbackOptions,
} from '@trellis/resilience';
import {
  inboundScope,
  ServiceClient,
  timeoutHeader,
  type InboundScope,
  type ServiceClientOptions,
} from '@trellis/client';
import { TrellisMetrics } from '@trellis/metrics';
import { addTracing, traceLogFields } from '@trellis/tracing';
import {
  ConsulRegistry,
  Discovery,
  registryFromUrl,
  SelfRegistration,
  type DiscoveryEvent,
  type Registry,
} from '@trellis/registry';
import { ConsulKv, ServiceConfig } from '@trellis/config';
import type { z } from 'zod';
import { validateAppOptions, type AppOptions } from './app-options.js';
import type { MethodMetadata } from './decorators/metadata.js';
import { clientService, createDeclarativeClient, FallbackCause } from './declarative-client/declarative-client.js';
import { logBreakerChanges, logRegistration } from './app-logs.js';
import { serveHealth } from './health-routes.js';
import { applyInboundLimits, isHealthCheck, type InboundLimits } from './inbound-limit.js';
import { LiveRules } from './control-plane/live-rules.js';
import { RuleLimits } from './control-plane/rule-limits.js';
import { mountControllers } from './controllers/mount-controllers.js';
import { traceRequests } from './request-tracing.js';
import { ServerConnections } from './server-connections.js';
import { AppTokens, clientToken } from './tokens.js';
import { trellisErrorReply } from './trellis-error-reply.js';
import { serveTrellisStatus } from './trellis-page/trellis-route.js';
import { describeApp, RecentCallsTracker, type AppState, type TrellisStatus } from './trellis-page/trellis-status.js';

/** Where a started app can be reached. */
export interface StartedApp {
  /** The app's own base URL, e.g. http://127.0.0.1:41235. */
  readonly url: string;
  /** The instance as registered. */
  readonly instance: ServiceInstance;
}

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The request as the calls made for it inherit it: a signal that aborts when the caller's
     * deadline (the `x-trellis-timeout-ms` header) passes or the caller goes away, and that
     * deadline as a reading of the app's clock. Calls of the app's clients made while serving
     * the request inherit both.
     */
    inbound: InboundScope;
  }
}

/**
 * A governed service: an HTTP server (Fastify) that registers itself under its service name,
 * heartbeats while it runs, calls other services by name, and shuts down without dropping
 * calls: deregister, keep serving while callers' caches catch up, then close.
 *
 * Routes are added on `app.http` before `start()`. `/health` is built in: 200 `{"status":"UP"}`
 * while running, 503 `{"status":"DRAINING"}` while shutting down; so are `/health/live`,
 * `/health/ready` (registered, and the `critical` dependencies have a healthy instance) and
 * `/info` for platforms' probes, and `/metrics`, in Prometheus's text format (see {@link metrics}).
 *
 * @throws ConfigError from the constructor for an invalid option, naming it.
 * @example
 * const app = new TrellisApp({ service: 'forum', calls: ['users'] });
 * app.http.get('/posts/:id', async (req) => app.client('users').get(`/users/${authorOf(req)}`));
 * await app.start();
 * app.closeOnSignals();
 */
export class TrellisApp {
  readonly service: string;
  /** The HTTP server: add routes and plugins here before `start()`. */
  readonly http: FastifyInstance;
  /** The app's inversify container: the registry, discovery, the app and a client per declared call. */
  readonly container: Container;
  readonly discovery: Discovery;
  readonly registry: Registry;

  readonly #options: AppOptions;
  readonly #ownsRegistry: boolean;
  readonly #clock: Clock;
  readonly #clients = new Map<string, ServiceClient>();
  /** The services called: `calls` and those of the declarative `clients`. */
  readonly #calls: readonly string[];
  /** Clients of declarative methods whose policies set stages of their own, with their breakers. */
  readonly #methodClients: Array<{
    readonly client: ServiceClient;
    readonly breakers: CircuitBreakerRegistry | undefined;
  }> = [];
  /** The per-instance circuit breakers all of this app's clients share (outlier ejection). */
  readonly breakers: CircuitBreakerRegistry;
  /**
   * The sink all of this app's clients report to: subscribe once with `app.telemetry.onEvent`
   * for every call the app makes. A listener that throws is logged, never a crash.
   */
  readonly telemetry: Telemetry;
  /**
   * The app's metrics, fed from {@link telemetry} and the requests it serves, and served on
   * `GET /metrics`; undefined with `metrics: false`. Add series of your own to `metrics.registry`.
   */
  readonly metrics: TrellisMetrics | undefined;
  /**
   * The governance rules this app follows from the registry's KV, what it runs of them and what
   * it refused; undefined with `controlPlane: false` or a registry that has no KV.
   */
  readonly rules: LiveRules | undefined;
  /** The inbound limits the app's own rules (`limits`) set, beside those of {@link limitInbound}. */
  readonly ruleLimits: RuleLimits;
  /** The service's typed settings (the `config` option), bound under `AppTokens.config`; undefined without one. */
  readonly config: ServiceConfig<z.ZodObject> | undefined;
  readonly #ownsKv: ConsulKv | undefined;
  #selfRegistration: SelfRegistration | undefined;
  #recentCalls: RecentCallsTracker | undefined;
  readonly #connections: ServerConnections;
  #startedAt: number | undefined;
  #started: StartedApp | undefined;
  #state: AppState = 'new';
  #closing: Promise<void> | undefined;
  readonly #adopted = new WeakSet<object>();
  readonly #limiterSubscriptions: Disposable[] = [];
  #countsOwnInstances = false;

  constructor(options: AppOptions) {
    validateAppOptions(options);
    this.#options = options;
    this.service = options.service;
    this.#calls = [...new Set([...(options.calls ?? []), ...(options.clients ?? []).map(clientService)])];
    this.#clock = options.clock ?? systemClock;
    this.breakers = new CircuitBreakerRegistry({ ...options.breaker, clock: this.#clock });
    this.telemetry = new Telemetry((error) => this.http.log.error({ err: error }, 'a telemetry listener threw'));
    this.#ownsRegistry = options.registry === undefined;
    this.registry =
      options.registry ??
      registryFromUrl(options.registryUrl ?? 'http://127.0.0.1:8500', {
        ...(options.registryToken === undefined ? {} : { token: options.registryToken }),
      });
    this.discovery = new Discovery(this.registry, { ...options.discovery, clock: this.#clock });
    this.http = Fastify({
      logger: {
        level: options.logLevel ?? 'info',
        base: { service: options.service },
        // Every line written inside a request or a call carries its trace_id and span_id.
        mixin: traceLogFields,
        ...(options.logDestination === undefined ? {} : { stream: options.logDestination }),
      },
      // One log line per request is for access logs and tracing, not for the service log.
      logController: new LogController({ disableRequestLogging: true }),
      // Keep-alive connections of callers are closed when idle at shutdown, not cut mid-request.
      forceCloseConnections: 'idle',
      // A request that reaches a closing server is served, not refused with 503: after the
      // drain, callers' caches have dropped this instance, and what still arrives is in flight.
      return503OnClosing: false,
    });
    this.http.setErrorHandler(trellisErrorReply);
    // First, so that the span covers the requests the app's own hooks refuse.
    traceRequests(this.http);
    logBreakerChanges(this.http.log, this.breakers.onStateChanged);
    this.metrics =
      options.metrics === false
        ? undefined
        : this.#serveMetrics(new TrellisMetrics({ clock: this.#clock, ...options.metrics }));
    // The status page shows internals: on unless `trellisPage: false`. Its tally of calls starts
    // now when the telemetry already has a listener (metrics), else at the first look.
    if (options.trellisPage !== false) {
      serveTrellisStatus(this.http, this.service, () => this.describe());
      if (this.telemetry.enabled) this.#recentCalls = new RecentCallsTracker(this.telemetry, this.#clock);
    }
    this.http.decorateRequest('inbound', undefined as unknown as InboundScope);
    this.http.addHook('onRequest', (request, reply, done) => this.#openScope(request, reply, done));
    // Run the handler inside the scope as well: body parsing may have left it.
    this.http.addHook('preHandler', (request, _reply, done) => inboundScope.run(request.inbound, done));
    // While draining, answers close their connection, so that callers stop reusing sockets
    // that the server is about to close under them.
    this.http.addHook('onRequest', async (_request, reply) => {
      if (this.#state !== 'running') void reply.header('connection', 'close');
    });
    this.http.get('/health', async (_request, reply) => {
      const up = this.#state === 'running';
      return reply.code(up ? 200 : 503).send({
        status: up ? 'UP' : 'DRAINING',
        service: this.service,
        instance: this.#started?.instance.id,
      });
    });
    serveHealth(this.http, {
      service: this.service,
      version: options.version,
      clock: this.#clock,
      critical: options.critical ?? [],
      discovery: this.discovery,
      state: () => this.#state,
      instance: () => this.#started?.instance,
      registration: () => this.#selfRegistration?.describe(),
      startedAt: () => this.#startedAt,
    });
    this.#connections = new ServerConnections(this.http.server, this.#clock);
    this.ruleLimits = new RuleLimits(this.http, {
      clock: this.#clock,
      exempt: isHealthCheck,
      onWouldRefuse: (limit) => {
        if (this.telemetry.enabled) {
          const version = this.rules?.dryRunVersion(this.service);
          this.telemetry.emit({ type: 'dry-run', effect: 'limit', service: this.service, version, limit });
        }
      },
    });
    const plane = options.controlPlane;
    const consul = this.registry instanceof ConsulRegistry ? this.registry : undefined;
    this.#ownsKv =
      plane === undefined && consul !== undefined
        ? new ConsulKv({
            url: consul.url,
            ...(options.registryToken === undefined ? {} : { token: options.registryToken }),
          })
        : undefined;
    const kv = plane === undefined || plane === false ? this.#ownsKv : plane.kv;
    this.rules =
      kv === undefined
        ? undefined
        : new LiveRules({
            kv,
            service: this.service,
            log: this.http.log,
            telemetry: this.telemetry,
            limits: this.ruleLimits,
          });
    this.config = options.config === undefined ? undefined : this.#makeConfig(options.config, kv);

    this.container = new Container();
    this.container.bind(AppTokens.app).toConstantValue(this);
    this.container.bind(AppTokens.registry).toConstantValue(this.registry);
    this.container.bind(AppTokens.discovery).toConstantValue(this.discovery);
    if (this.config !== undefined) this.container.bind(AppTokens.config).toConstantValue(this.config);
    for (const service of this.#calls) {
      this.container
        .bind(clientToken(service))
        .toDynamicValue(() => this.client(service))
        .inSingletonScope();
    }
    for (const type of options.clients ?? []) {
      const service = clientService(type);
      this.container
        .bind(type)
        .toDynamicValue(() =>
          createDeclarativeClient(type, (method, defaults) => this.#methodClient(service, method, defaults)),
        )
        .inSingletonScope();
    }
  }

  /** The instance once started. */
  get instance(): ServiceInstance | undefined {
    return this.#started?.instance;
  }

  /** Where the app is in its life: new, starting, running, draining (shutting down), closed. */
  get state(): AppState {
    return this.#state;
  }

  /**
   * The app's in-process governance now, as `GET /trellis` serves it: its instance and
   * registration, and for each client the called service's instances with their health,
   * breaker state, load and recent calls, the retry budget left and the rules in force.
   * Asks nothing of the registry or the network; the client of a service in `calls` that was
   * not used yet is made, so that it is listed.
   *
   * @example
   * const open = app.describe().clients.flatMap((c) => c.instances.filter((i) => i.breaker?.state === 'open'));
   */
  describe(): TrellisStatus {
    if (this.#state !== 'closed') {
      // Declared calls are shown before their first call: making a client asks nothing of the network.
      for (const service of this.#calls) this.client(service);
      // With no other telemetry listener, calls are tallied from the first look on, so that an
      // app with metrics off pays nothing for them until someone looks.
      this.#recentCalls ??= new RecentCallsTracker(this.telemetry, this.#clock);
    }
    return describeApp({
      service: this.service,
      state: this.#state,
      clock: this.#clock,
      instance: this.#started?.instance,
      url: this.#started?.url,
      registration: this.#selfRegistration?.describe(),
      clients: this.#clients.values(),
      discovery: this.discovery,
      recent: this.#recentCalls,
      rules: this.rules?.describe(),
      config: this.config,
    });
  }

  /**
   * The client for calls to `service`, created on first use and closed with the app.
   * @throws ClosedError after close().
   */
  client(service: string): ServiceClient {
    let client = this.#clients.get(service);
    if (client === undefined) {
      client = this.#makeClient(service, {});
      this.#clients.set(service, client);
      this.rules?.add(client);
    }
    return client;
  }

  // A declarative client's method calls through the app's client of its service, unless its
  // policies set stages of their own: then through a client of its own with those options.
  #methodClient(service: string, method: MethodMetadata, defaults: MethodMetadata): ServiceClient {
    const retry = method.retry ?? defaults.retry;
    const breaker = method.circuitBreaker ?? defaults.circuitBreaker;
    const fallback = method.fallback ?? defaults.fallback;
    if ((retry === undefined || retry === false) && breaker === undefined && fallback === undefined) {
      return this.client(service);
    }
    const base = this.#options.client;
    const breakers = breaker === undefined ? undefined : new CircuitBreakerRegistry({ ...breaker, clock: this.#clock });
    const client = this.#makeClient(service, {
      ...(typeof retry === 'object'
        ? { retry: { ...(typeof base?.retry === 'object' ? base.retry : {}), ...retry } }
        : {}),
      ...(breakers === undefined ? {} : { breakers }),
      ...(fallback === undefined
        ? {}
        : {
            filters: [
              new Fallback((cause) => ({ body: new FallbackCause(cause) }), fallbackCovers),
              ...(base?.filters ?? []),
            ],
          }),
    });
    this.#methodClients.push({ client, breakers });
    this.rules?.add(client);
    return client;
  }

  #makeConfig(config: NonNullable<AppOptions['config']>, kv: ConsulKv | undefined): ServiceConfig<z.ZodObject> {
    const made = new ServiceConfig({
      service: this.service,
      schema: config.schema,
      ...(config.profile === undefined ? {} : { profile: config.profile }),
      ...(config.file === undefined ? {} : { file: config.file }),
      ...(config.envPrefix === undefined ? {} : { envPrefix: config.envPrefix }),
      ...(kv === undefined ? {} : { kv }),
      logger: { warn: (message) => this.http.log.warn(message) },
    });
    made.onRefused((refusal) => {
      if (this.telemetry.enabled) {
        this.telemetry.emit({
          type: 'config-refused',
          key: refusal.key,
          source: refusal.source,
          problem: refusal.reason,
        });
      }
    });
    return made;
  }

  #makeClient(service: string, overrides: Partial<ServiceClientOptions>): ServiceClient {
    if (this.#state === 'closed') throw new ClosedError(`TrellisApp "${this.service}"`);
    return new ServiceClient({
      ...this.#options.client,
      service,
      discovery: this.discovery,
      caller: this.service,
      breakers: this.breakers,
      clock: this.#clock,
      telemetry: this.telemetry,
      ...overrides,
      // Tracing first, so that the app's own stack edits may move or remove it.
      stack: (stack) => {
        addTracing(stack);
        this.#options.client?.stack?.(stack);
      },
    });
  }

  /**
   * Limits the requests this app serves: 429 with Retry-After beyond a rate, 503 beyond a
   * number in flight (see {@link applyInboundLimits}); `/health` is exempt. Call before start().
   *
   * @example
   * app.limitInbound({ concurrency: new ConcurrencyLimit({ maxConcurrent: 64 }) });
   */
  limitInbound(limits: InboundLimits): this {
    applyInboundLimits(this.http, limits, (limiter) => this.#adoptLimiter(limiter));
    return this;
  }

  // A limiter shared by the cluster reports its fallback to a local share through the app's
  // telemetry (so its metric is on /metrics), and divides its limit by the instances of this
  // service that discovery knows, unless it was given a count of its own. Called for each key's
  // limiter as it is picked: every key of one cluster limit shares its events, so they are
  // taken over once, and a local limiter (no events) costs a check.
  #adoptLimiter(limiter: AnyRateLimiter): void {
    const events = 'onEvent' in limiter ? limiter.onEvent : undefined;
    const counts = 'countInstancesWith' in limiter && limiter.countInstancesWith !== undefined;
    if (events === undefined && !counts) return;
    const identity: object = events ?? limiter;
    if (this.#adopted.has(identity)) return;
    this.#adopted.add(identity);
    if (events !== undefined) this.#limiterSubscriptions.push(events((event) => this.telemetry.emit(event)));
    if (counts) {
      limiter.countInstancesWith?.(() => this.discovery.describe(this.service)?.instances?.length ?? 1);
      // Adopted after start (a key's first request): the count needs this service watched now.
      if (!this.#countsOwnInstances && this.#state === 'running') {
        void this.discovery.instances(this.service).catch(() => undefined);
      }
      this.#countsOwnInstances = true;
    }
  }

  /**
   * Listens, then registers the instance and starts heartbeating; the app is then running. When
   * the registry cannot be reached, it starts anyway: one warning, `/health/ready` answers 503,
   * and the registration is tried again with backoff until the registry accepts it (logged once).
   * @throws when the port cannot be bound or the registry refuses the registration; the app is
   *   then closed.
   */
  async start(): Promise<StartedApp> {
    if (this.#state !== 'new') throw new Error(`TrellisApp.start() called when ${this.#state}`);
    this.#state = 'starting';
    this.#startedAt = this.#clock.now();
    try {
      const options = this.#options;
      // Controllers read their settings when they are made: the layers are in before.
      await this.config?.start(rulesReadyMs);
      // Routes must be added before listen; controllers are resolved now, when all bindings are in.
      await mountControllers(this.http, this.container, options.controllers ?? [], {
        clock: this.#clock,
        service: this.service,
        adoptLimiter: (limiter) => this.#adoptLimiter(limiter),
      });
      // Rules in the registry apply before the first request is served, unless it does not answer soon.
      await this.rules?.ready(rulesReadyMs);
      const host = options.host ?? '127.0.0.1';
      await this.http.listen({
        host,
        port: options.port ?? 0,
        listenTextResolver: (address) => `${options.service} listening on ${address}`,
      });
      const address = this.http.server.address();
      const port = typeof address === 'object' && address !== null ? address.port : (options.port ?? 0);
      const advertised = options.advertiseAddress ?? (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host);
      const instance: ServiceInstance = {
        id: options.instanceId ?? `${options.service}-${advertised}-${port}`,
        service: options.service,
        address: advertised,
        port,
        tags: [...(options.tags ?? [])],
        meta: {
          weight: options.weight ?? 1,
          labels: { ...options.labels },
          ...(options.version === undefined ? {} : { version: options.version }),
          ...(options.zone === undefined ? {} : { zone: options.zone }),
        },
      };
      const self = new SelfRegistration(
        this.registry,
        { instance, ttlMs: options.ttlMs ?? 10_000, deregisterAfterMs: options.deregisterAfterMs ?? 60_000 },
        { clock: this.#clock, startWhenUnreachable: true },
      );
      logRegistration(this.http.log, self, instance.id);
      this.metrics?.watch({ registration: self });
      this.discovery.onEvent((event) => logDiscoveryEvent(this.http.log, event));
      this.#selfRegistration = self;
      this.rules?.report(instance.id);
      this.#started = { url: `http://${advertised.includes(':') ? `[${advertised}]` : advertised}:${port}`, instance };
      self.onRegistered(() => this.http.log.info({ instance: instance.id }, `registered as ${instance.id}`));
      await self.start();
      const registration = self.describe();
      if (registration.registered) {
        this.http.log.info({ instance: instance.id }, `registered as ${instance.id}`);
      } else {
        this.http.log.warn(
          { instance: instance.id },
          `registry unreachable at start (${registration.lastError ?? 'no answer'}): serving, not ready, registering again with backoff`,
        );
      }
      // Readiness reads discovery's cache of critical dependencies: watch them from the start.
      for (const service of options.critical ?? []) void this.discovery.instances(service).catch(() => undefined);
      // A shared rate limit's local share is the limit divided by the instances seen here.
      if (this.#countsOwnInstances) void this.discovery.instances(this.service).catch(() => undefined);
      this.#state = 'running';
      return this.#started;
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  /**
   * For a service's main module: starts, prints one line saying where the service listens
   * (whatever the log level, for people and supervisors), and closes on SIGINT / SIGTERM.
   * When start fails it prints why in one line, no stack trace, and exits with status 1:
   * `users: port 8080 is in use on 127.0.0.1 (set PORT or the port setting)`.
   *
   * @example
   * const app = new TrellisApp(loadAppOptions({ service: 'users' }));
   * app.http.get<{ Params: { id: string } }>('/users/:id', async (request) => findUser(request.params.id));
   * await app.run();
   */
  async run(): Promise<StartedApp> {
    try {
      const started = await this.start();
      console.log(`${this.service} listening on ${started.url} as ${started.instance.id}`);
      this.closeOnSignals();
      return started;
    } catch (error) {
      console.error(startFailure(this.service, this.#options, error));
      process.exit(1);
    }
  }

  /**
   * Shuts down gracefully: `/health` and `/health/ready` turn 503, the instance deregisters, the
   * server keeps serving until the registry no longer lists it and no request has come for
   * 250 ms (at most `drainMs` in all), then stops taking connections, closes each one once its
   * requests are answered, and cuts those still open after `shutdownTimeoutMs`. Logs how long
   * each step took. Safe to call twice; the second call waits for the first.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  /**
   * Closes the app on SIGINT or SIGTERM (see {@link close}), then lets the process end with
   * status 0. A second signal during the shutdown exits at once with status 130; a shutdown that
   * overruns drainMs + shutdownTimeoutMs by 5 s exits with status 1.
   */
  closeOnSignals(signals: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM']): void {
    const onSignal = (signal: NodeJS.Signals): void => {
      if (this.#closing !== undefined) {
        this.http.log.warn(`${signal} again during shutdown; exiting now`);
        process.exit(130);
      }
      this.http.log.info(`${signal}: shutting down`);
      const boundMs = (this.#options.drainMs ?? 1_000) + (this.#options.shutdownTimeoutMs ?? 10_000) + 5_000;
      setTimeout(() => {
        this.http.log.error(`shutdown still running after ${boundMs} ms; exiting`);
        process.exit(1);
      }, boundMs).unref();
      this.close().then(
        () => {
          for (const s of signals) process.removeListener(s, onSignal);
          // Exit even if a user's handle is left open, once our own work is done.
          setTimeout(() => process.exit(0), 2_000).unref();
        },
        (error: unknown) => {
          this.http.log.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    for (const signal of signals) process.on(signal, onSignal);
  }

  // Times every request from its first hook, so that those refused by a hook (400, 429, 503)
  // count too, and serves the registry in Prometheus's text format.
  #serveMetrics(metrics: TrellisMetrics): TrellisMetrics {
    metrics.subscribe(this.telemetry);
    metrics.watch({ breakers: this.breakers, discovery: this.discovery });
    this.http.addHook('onResponse', (request, reply, done) => {
      // Fastify's own stopwatch (from the request's arrival): the app's clock decides, it does not time.
      metrics.recordServerRequest({
        method: request.method,
        template: request.routeOptions.url,
        status: reply.statusCode,
        durationMs: reply.elapsedTime,
      });
      done();
    });
    const registry = metrics.registry;
    this.http.get('/metrics', async (_request, reply) =>
      reply.type(registry.contentType).send(await registry.metrics()),
    );
    return metrics;
  }

  // The caller's deadline becomes this request's: a signal that aborts when it passes (or when
  // the caller goes away), and the deadline that outbound calls made for the request inherit.
  #openScope(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
    const controller = new AbortController();
    const header = request.headers[timeoutHeader];
    let deadline: number | undefined;
    let timer: Timer | undefined;
    if (header !== undefined) {
      const ms = typeof header === 'string' && /^\d{1,10}$/.test(header) ? Number(header) : Number.NaN;
      if (Number.isNaN(ms)) {
        void reply.code(400).send({
          error: 'INVALID_HEADER',
          message: `header "${timeoutHeader}" must be a whole number of milliseconds, got ${JSON.stringify(header)}`,
          field: timeoutHeader,
        });
        return;
      }
      if (ms === 0) {
        // The caller has already given up: do no work for it.
        void reply.code(504).send({ error: 'TIMEOUT', message: "the caller's deadline had passed on arrival" });
        return;
      }
      deadline = this.#clock.now() + ms;
      timer = this.#clock.setTimer(ms, () => controller.abort(new TimeoutError('deadline', ms, this.service)));
    }
    reply.raw.once('close', () => {
      timer?.cancel();
      if (!reply.raw.writableFinished) controller.abort(new Error('the caller closed the connection'));
    });
    request.inbound = { signal: controller.signal, deadline };
    inboundScope.run(request.inbound, done);
  }

  // Callers stop sending once their discovery drops this instance. The registry's answer no
  // longer listing it wakes their blocking queries; after it, requests that had already picked
  // this instance still arrive for a moment. So: ask the registry (blocking on its index) until
  // it no longer lists the instance, then wait until no request has arrived for a quiet period;
  // both by `deadline`. Returns when each was reached, in ms from `began` (null: not reached).
  async #waitForCallers(
    began: number,
    deadline: number,
  ): Promise<{ unlistedMs: number | null; quietMs: number | null }> {
    const clock = this.#clock;
    const stop = new AbortController();
    const timer = clock.setTimer(Math.max(0, deadline - clock.now()), () => stop.abort());
    const since = (): number => Math.round(clock.now() - began);
    let unlistedMs: number | null = null;
    let quietMs: number | null = null;
    try {
      const id = this.#started?.instance.id;
      if (id !== undefined && this.#selfRegistration?.describe().registeredAt !== undefined) {
        let index = 0;
        // Bounded: each round is a blocking query that returns on a change or at the deadline.
        for (let round = 0; round < 100 && !stop.signal.aborted; round++) {
          const view = await this.registry.query(this.service, {
            index,
            waitMs: Math.max(1, deadline - clock.now()),
            signal: stop.signal,
          });
          if (![...view.healthy, ...view.unhealthy].some((i) => i.id === id)) {
            unlistedMs = since();
            break;
          }
          index = view.index;
        }
      } else {
        unlistedMs = since(); // never registered: no caller knows of it
      }
      const from = clock.now();
      for (let round = 0; round < 1_000 && !stop.signal.aborted; round++) {
        const quietFrom = Math.max(from, this.#connections.lastArrivalAt ?? from);
        const left = quietFrom + callersQuietMs - clock.now();
        if (left <= 0) {
          quietMs = since();
          break;
        }
        await sleep(clock, left, stop.signal);
      }
    } catch (error) {
      // The deadline (an abort), or a registry that does not answer: drainMs bounds the wait.
      if (!stop.signal.aborted) this.http.log.debug({ err: error }, 'shutdown: could not ask the registry');
      if (!stop.signal.aborted) await sleep(clock, Math.max(0, deadline - clock.now()), stop.signal).catch(() => {});
    } finally {
      timer.cancel();
    }
    return { unlistedMs, quietMs };
  }

  // Readiness false, deregister, wait (at most drainMs) until callers stopped sending, stop
  // accepting, let the requests in flight finish (at most shutdownTimeoutMs), then close the rest.
  async #shutDown(): Promise<void> {
    const wasRunning = this.#state === 'running';
    const began = this.#clock.now();
    this.#state = 'draining';
    if (this.#selfRegistration !== undefined) {
      try {
        await this.#selfRegistration.close();
      } catch (error) {
        // The registry will drop the instance when its TTL runs out.
        this.http.log.warn({ err: error }, 'could not deregister; the registry will expire this instance');
      }
    }
    const drainMs = this.#options.drainMs ?? 1_000;
    const drain = wasRunning && drainMs > 0 ? await this.#waitForCallers(began, began + drainMs) : undefined;
    const stopped = this.#clock.now();
    const closing = this.http.close();
    this.#connections.closeWhenIdle();
    const timeoutMs = this.#options.shutdownTimeoutMs ?? 10_000;
    const cutTimer = this.#clock.setTimer(timeoutMs, () => {
      const cut = this.#connections.cut();
      if (cut.connections > 0) {
        this.http.log.warn(
          { connections: cut.connections, requests: cut.requests },
          `shutdown: cut ${cut.connections} connections with ${cut.requests} requests still in flight after ${timeoutMs} ms`,
        );
      }
    });
    try {
      await closing;
    } finally {
      cutTimer.cancel();
    }
    if (wasRunning) {
      const ended = this.#clock.now();
      const shutdown = {
        totalMs: Math.round(ended - began),
        unlistedMs: drain?.unlistedMs ?? null,
        quietMs: drain?.quietMs ?? null,
        inFlightMs: Math.round(ended - stopped),
      };
      this.http.log.info(
        { shutdown },
        `shut down in ${shutdown.totalMs} ms: unlisted after ${shutdown.unlistedMs ?? '-'} ms, callers quiet after ${shutdown.quietMs ?? '-'} ms, requests in flight done ${shutdown.inFlightMs} ms after that`,
      );
    }
    await Promise.all([...this.#clients.values(), ...this.#methodClients.map((m) => m.client)].map((c) => c.close()));
    await Promise.all(this.#methodClients.flatMap((m) => (m.breakers === undefined ? [] : [m.breakers.close()])));
    await this.breakers.close();
    this.metrics?.dispose();
    for (const subscription of this.#limiterSubscriptions) subscription.dispose();
    this.#recentCalls?.dispose();
    await this.rules?.close();
    this.config?.close();
    await this.#ownsKv?.close();
    await this.discovery.close();
    if (this.#ownsRegistry) await this.registry.close();
    this.#state = 'closed';
  }
}

// A declarative method's fallback answers for whatever leaves the caller without an answer
// (OpenFeign's): the stage's defaults, no instance or connection, a 5xx; never a 4xx, which is one.
const fallbackCovers: FallbackOptions = {
  codes: [...defaultFallbackCodes, 'NO_INSTANCES', 'CONNECTION_FAILED', 'REGISTRY_UNAVAILABLE'],
  failureReplies: true,
};

// The one line run() prints when start fails: what to change for the usual cause, else the error's message.
function startFailure(service: string, options: AppOptions, error: unknown): string {
  if ((error as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE') {
    return `${service}: port ${options.port ?? 0} is in use on ${options.host ?? '127.0.0.1'} (set PORT or the port setting)`;
  }
  const message = error instanceof Error ? error.message : String(error);
  return `${service} could not start: ${message.split('\n')[0] ?? message}`;
}

/** At start, the longest wait for the registry's rules before serving on the code's options (the watch goes on). */
const rulesReadyMs = 2_000;

/**
 * After the registry stopped listing a closing instance, how long no request must arrive before
 * callers count as having seen it: above a watch's floor between queries (50 ms) and the gaps
 * between requests of a caller under load, well below the default drainMs (1 000 ms).
 */
const callersQuietMs = 250;

// What an operator should see of discovery: outages, recoveries, panic and failover files.
function logDiscoveryEvent(log: FastifyBaseLogger, event: DiscoveryEvent): void {
  switch (event.type) {
    case 'registry-unavailable':
      log.warn({ err: event.error }, `registry unreachable for "${event.service}"; using the last known instances`);
      break;
    case 'registry-recovered':
      log.info(`registry reachable again for "${event.service}"${event.reset ? ' (it restarted)' : ''}`);
      break;
    case 'panic':
      log.warn(`only ${event.healthy} of ${event.registered} instances of "${event.service}" healthy: calling all`);
      break;
    case 'panic-over':
      log.info(`enough instances of "${event.service}" healthy again`);
      break;
    case 'failover-loaded':
      log.warn(
        `registry unreachable: "${event.service}" loaded from the failover file of ${new Date(event.savedAt).toISOString()}`,
      );
      break;
    case 'failover-failed':
      log.warn({ err: event.error }, `discovery failover file of "${event.service}" failed`);
      break;
    default:
      // Once per change of the instances known: what an operator reads after an incident.
      log.info({ event: event.type, instance: event.instance.id }, `discovery: ${event.type} ${event.instance.id}`);
  }
}
