import fs from 'node:fs';
import path from 'node:path';
import type { IncomingHttpHeaders } from 'node:http';
import send from '@fastify/send';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ConfigError, Emitter, systemClock, TrellisError, type Clock, type Event } from '@trellis/core';
import { ServiceClient, UndiciTransport } from '@trellis/client';
import { CircuitBreakerRegistry, type CircuitBreakerRegistryOptions, type RetryOptions } from '@trellis/resilience';
import { errorStatus, refusedByRate, type TrellisApp } from '@trellis/app';
import { addTracing, type ServerSpan } from '@trellis/tracing';
import { adminPageSecurityPolicy, renderAdminPage, type GatewayStatus, type RoutesReload } from './admin-page.js';
import { Cors } from './cors.js';
import { forwardedHeaders, replyHeaders } from './forwarded-headers.js';
import {
  parseCors,
  parseRateLimit,
  parseRoutes,
  parseRoutesFile,
  type CorsConfig,
  type RateLimitConfig,
  type RouteConfig,
} from './route-schema.js';
import { FileWatch } from './routes-file.js';
import { ClientRateLimit, GatewayRoute, RouteTable } from './route-table.js';
import { SessionCheck, type AuthOptions, type Refusal, type SessionUser } from './session-check.js';
import { renderUnavailablePage, unavailablePagePolicy, wantsPage } from './unavailable-page.js';
import { WebSocketTunnels } from './websocket-tunnels.js';

export interface GatewayOptions {
  /** Routes from code; first match wins. One of `routes` or `routesFile`. */
  readonly routes?: readonly RouteConfig[];
  /** A JSON file `{ "routes": [...] }`, reloaded when it changes; an invalid change is refused and the routes before stay. */
  readonly routesFile?: string;
  /** How often the routes file is polled, beside fs.watch's events; default 2 000 ms, 0 for none. */
  readonly routesFilePollMs?: number;
  /** Where sessions are checked, for routes with `auth`; default none (a route with `auth` other than "none" is then refused). */
  readonly auth?: AuthOptions;
  /** Largest request body in bytes, for routes that set none (413 beyond); default 1 048 576 (1 MiB). */
  readonly bodyLimitBytes?: number;
  /** CORS for routes that set none; default none (no CORS headers, preflights go to the service). */
  readonly cors?: CorsConfig;
  /** A rate limit per client key for routes that set none (429 with Retry-After beyond); default none. */
  readonly rateLimit?: RateLimitConfig;
  /** Most WebSocket tunnels open at once (503 beyond); default 1 000. */
  readonly maxTunnels?: number;
  /** The folder that static roots are relative to; default the routes file's folder, else the working directory. */
  readonly baseDir?: string;
  /** The admin page's path (HTML), with `<path>.json` beside it; default "/gateway". Neither is routed. */
  readonly adminPath?: string;
  /** Connections kept open to each instance; default 64. */
  readonly maxSocketsPerInstance?: number;
  /** Time for session caching, rate limits and debouncing; default the system clock. */
  readonly clock?: Clock;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The gateway route this request matched, set by the gateway's first hook. */
    gatewayRoute: GatewayRoute | undefined;
    /** The request's SERVER span, as the app's tracing hook sets it (declared by @trellis/app too). */
    serverSpan: ServerSpan | undefined;
  }
}

const proxiedMethods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/**
 * The edge service: one public entry routed to services by name, on the same governed stack as
 * every other call. It attaches to a {@link TrellisApp}, so that the gateway registers itself,
 * serves /health, /metrics and /trellis, traces each request from the edge and drains on
 * SIGTERM like any service; each proxied request then goes through a `ServiceClient` of the
 * route's service (deadline, retry within a budget, load balancing, per-instance breaker,
 * attempt timeout, undici transport in raw mode: bytes pass through untouched).
 *
 * Routes match by path prefix or exact path, host and header, first match wins; they strip or
 * rewrite the prefix, check sessions, limit rates and body sizes, answer CORS, serve static
 * files and redirect, and pass WebSocket upgrades through. Every proxied reply carries
 * `x-served-by: <instance id>`. The admin page lists routes, instances and the last reload.
 *
 * Call before `app.start()`.
 * @throws ConfigError for invalid options or routes, naming the field (`routes[2].match.pathPrefix`).
 * @example
 * const app = new TrellisApp({ service: 'gateway', port: 8080 });
 * const gateway = new Gateway(app, {
 *   routes: [{ match: { pathPrefix: '/api/users/' }, service: 'users', stripPrefix: true }],
 * });
 * await app.start();
 * gateway.setRoutes([{ match: { pathPrefix: '/' }, service: 'web' }]);
 */
export class Gateway {
  readonly app: TrellisApp;
  readonly #clock: Clock;
  readonly #transport: UndiciTransport;
  readonly #watchedServices = new Set<string>();
  /** One client per distinct service and policy, shared by the routes that have it. */
  readonly #clients = new Map<string, { client: ServiceClient; breakers: CircuitBreakerRegistry | undefined }>();
  readonly #sessions: SessionCheck | undefined;
  readonly #sessionClient: ServiceClient | undefined;
  readonly #tunnels: WebSocketTunnels;
  readonly #bodyLimitBytes: number;
  readonly #cors: Cors | undefined;
  readonly #rateLimit: ClientRateLimit | undefined;
  readonly #baseDir: string;
  readonly #adminPath: string;
  readonly #routesFile: string | undefined;
  /** The routes given in code, which come back when the rules' routes are removed. */
  readonly #codeRoutes: readonly RouteConfig[] | undefined;
  /** True while the routes in force came from the gateway's rules in the registry. */
  #fromRules = false;
  readonly #watch: FileWatch | undefined;
  readonly #maxTunnels: number;
  #table = new RouteTable([]);
  #lastReload: RoutesReload | undefined;
  #lastGoodReload: RoutesReload | undefined;
  /** The text of the routes file last refused, so that a refusal is logged once. */
  #refusedText: string | undefined;
  /** The text of the routes file in force: the watch and the poll may both report one change. */
  #appliedText: string | undefined;
  #closed = false;
  readonly #reloaded = new Emitter<RoutesReload>();
  /** Fires on each load of routes, from code or the routes file, applied (`ok`) or refused. */
  readonly onReloaded: Event<RoutesReload> = this.#reloaded.event;

  constructor(app: TrellisApp, options: GatewayOptions) {
    this.app = app;
    this.#clock = options.clock ?? systemClock;
    if ((options.routes === undefined) === (options.routesFile === undefined)) {
      throw new ConfigError('routes', 'give exactly one of "routes" or "routesFile"');
    }
    this.#bodyLimitBytes = options.bodyLimitBytes ?? 1_048_576;
    if (!(Number.isInteger(this.#bodyLimitBytes) && this.#bodyLimitBytes >= 0)) {
      throw new ConfigError('bodyLimitBytes', `must be a whole number of bytes, got ${this.#bodyLimitBytes}`);
    }
    this.#maxTunnels = options.maxTunnels ?? 1_000;
    if (!(Number.isInteger(this.#maxTunnels) && this.#maxTunnels >= 0)) {
      throw new ConfigError('maxTunnels', `must be a whole number, got ${this.#maxTunnels}`);
    }
    this.#cors = options.cors === undefined ? undefined : new Cors(parseCors(options.cors));
    this.#rateLimit =
      options.rateLimit === undefined ? undefined : new ClientRateLimit(parseRateLimit(options.rateLimit), this.#clock);
    this.#routesFile = options.routesFile === undefined ? undefined : path.resolve(options.routesFile);
    this.#baseDir = path.resolve(
      options.baseDir ?? (this.#routesFile === undefined ? process.cwd() : path.dirname(this.#routesFile)),
    );
    this.#adminPath = options.adminPath ?? '/gateway';
    this.#transport = new UndiciTransport({
      raw: true,
      ...(options.maxSocketsPerInstance === undefined ? {} : { maxSocketsPerInstance: options.maxSocketsPerInstance }),
    });
    if (options.auth !== undefined) {
      if (typeof options.auth.service !== 'string' || options.auth.service === '') {
        throw new ConfigError('auth.service', 'must name the service that checks sessions');
      }
      // Its own client with a decoding transport: the gateway reads this answer, it does not pass it on.
      this.#sessionClient = this.#makeClient(options.auth.service, { transport: 'undici' });
      this.#sessions = new SessionCheck(this.#sessionClient, options.auth, this.#clock);
    }
    this.#tunnels = new WebSocketTunnels({
      find: (method, url, headers) => this.#table.find(method, url, headers),
      authorize: (route, headers) => this.#authorize(route, headers),
      maxTunnels: this.#maxTunnels,
      log: app.http.log,
    });

    this.#codeRoutes = options.routes;
    if (options.routes !== undefined) this.setRoutes(options.routes);
    else {
      const file = this.#routesFile as string;
      // At start an unreadable or invalid file is an error: there are no routes before it to keep.
      const text = fs.readFileSync(file, 'utf8');
      this.#apply(parseRoutesFile(text), file);
      this.#appliedText = text;
      this.#watch = new FileWatch(
        file,
        { clock: this.#clock, debounceMs: 100, pollMs: options.routesFilePollMs ?? 2_000 },
        () => void this.reloadRoutesFile(),
      );
    }
    // The gateway's own rules (`gateway.routes` in trellis/rules/<service>) win over the file's
    // or the code's routes while they are set; an invalid set is refused as a whole.
    app.rules?.useOwnRules((rules) => this.#useRulesRoutes(rules?.gateway?.routes));
    this.#mount(app.http);
  }

  #useRulesRoutes(routes: readonly unknown[] | undefined): void {
    if (routes !== undefined) {
      try {
        this.#apply(parseRoutes(routes), 'rules');
      } catch (error) {
        // The control plane logs and reports it, the field named within the rules document; the admin page shows it too.
        this.#refused('rules', error, false);
        throw ConfigError.is(error) ? new ConfigError(`gateway.${error.field}`, error.problem) : error;
      }
      this.#fromRules = true;
      return;
    }
    if (!this.#fromRules) return;
    this.#fromRules = false;
    if (this.#codeRoutes !== undefined) {
      this.#apply(parseRoutes(this.#codeRoutes), 'code');
    } else {
      this.#appliedText = undefined;
      void this.reloadRoutesFile();
    }
  }

  /** The routes in force, first match first. */
  get routes(): readonly GatewayRoute[] {
    return this.#table.routes;
  }

  /** The last load of routes (from code or the file), successful or refused. */
  get lastReload(): RoutesReload | undefined {
    return this.#lastReload;
  }

  /** WebSocket tunnels open now. */
  get openTunnels(): number {
    return this.#tunnels.open;
  }

  /**
   * Replaces the routes, all or nothing (the control plane feeds them from KV this way).
   * @throws ConfigError naming the field, e.g. `routes[2].match.pathPrefix`; the routes before stay.
   */
  setRoutes(routes: readonly RouteConfig[]): void {
    try {
      this.#apply(parseRoutes(routes), 'code');
      this.#appliedText = undefined;
    } catch (error) {
      this.#refused('code', error);
      throw error;
    }
  }

  /**
   * Reads the routes file again and applies it; an invalid file is refused (logged once per
   * content, shown on the admin page) and the routes before stay. Called on each change of the file.
   * @returns true when the file's routes are in force.
   */
  async reloadRoutesFile(): Promise<boolean> {
    const file = this.#routesFile;
    // The rules' routes are in force: the file is read again when they are removed.
    if (file === undefined || this.#closed || this.#fromRules) return false;
    let text: string;
    try {
      text = await fs.promises.readFile(file, 'utf8');
    } catch (error) {
      this.#refused(file, new ConfigError('routesFile', `cannot be read: ${(error as Error).message}`));
      return false;
    }
    // Unchanged since the last load (the watch and the poll both saw one change): nothing to do.
    if (text === this.#refusedText) return false;
    if (text === this.#appliedText) return true;
    try {
      this.#apply(parseRoutesFile(text), file);
      this.#appliedText = text;
      this.#refusedText = undefined;
      return true;
    } catch (error) {
      this.#refusedText = text;
      this.app.http.log.error(
        { err: error, file },
        `routes file refused, the ${this.#table.routes.length} routes before stay: ${(error as Error).message}`,
      );
      this.#refused(file, error, false);
      return false;
    }
  }

  /**
   * What the admin page shows: routes, their services' instances with health and breaker state,
   * the last reload, the tunnels open. Asks nothing of the registry.
   */
  describe(): GatewayStatus {
    const discovery = this.app.discovery;
    return {
      service: this.app.service,
      routes: this.#table.routes.map((route) => {
        const target = route.target;
        const known = target.kind === 'service' ? discovery.describe(target.service) : undefined;
        const healthy = new Set((known?.healthy ?? []).map((i) => i.id));
        const listed = known === undefined ? [] : [...known.healthy, ...known.unhealthy];
        const breakers = route.client?.breakers;
        return {
          name: route.name,
          match: route.config.match,
          kind: target.kind,
          target: target.kind === 'service' ? target.service : target.kind === 'static' ? target.root : target.to,
          auth: route.auth,
          websocket: route.websocket,
          instances: listed.slice(0, 200).map((i) => ({
            id: i.id,
            address: i.address,
            port: i.port,
            healthy: healthy.has(i.id),
            breaker: breakers?.find(i.id)?.toJSON(),
          })),
        };
      }),
      lastReload: this.#lastReload,
      lastGoodReload: this.#lastGoodReload,
      tunnels: { open: this.#tunnels.open, max: this.#maxTunnels },
      sessionsCached: this.#sessions?.cached,
    };
  }

  #apply(configs: readonly RouteConfig[], source: string): void {
    if (this.#closed) return;
    configs.forEach((config, index) => {
      if ((config.auth ?? 'none') !== 'none' && this.#sessions === undefined) {
        throw new ConfigError(
          `routes[${index}].auth`,
          'needs the gateway\'s "auth" option (where sessions are checked)',
        );
      }
    });
    const used = new Set<string>();
    const routes = configs.map(
      (config, index) =>
        new GatewayRoute(config, index, {
          clientFor: (route) => {
            const key = policyKey(route);
            used.add(key);
            return this.#clientFor(key, route);
          },
          baseDir: this.#baseDir,
          bodyLimitBytes: this.#bodyLimitBytes,
          cors: this.#cors,
          rateLimit: this.#rateLimit,
          clock: this.#clock,
        }),
    );
    this.#table = new RouteTable(routes);
    // Clients no route uses any more: their calls in flight finish on the shared transport.
    for (const [key, entry] of this.#clients) {
      if (used.has(key)) continue;
      this.#clients.delete(key);
      this.app.rules?.remove(entry.client);
      void entry.client.close();
      void entry.breakers?.close();
    }
    const reload: RoutesReload = { source, at: new Date().toISOString(), ok: true, routes: routes.length };
    this.#lastReload = reload;
    this.#lastGoodReload = reload;
    this.#reloaded.emit(reload);
  }

  #refused(source: string, error: unknown, log = true): void {
    const message = error instanceof Error ? error.message : String(error);
    if (log && source !== 'code') this.app.http.log.error({ err: error }, `routes refused: ${message}`);
    const reload: RoutesReload = {
      source,
      at: new Date().toISOString(),
      ok: false,
      error: message,
      routes: this.#table.routes.length,
    };
    this.#lastReload = reload;
    this.#reloaded.emit(reload);
  }

  #clientFor(key: string, route: RouteConfig): ServiceClient {
    const existing = this.#clients.get(key);
    if (existing !== undefined) return existing.client;
    const breakers =
      route.breaker === undefined
        ? undefined
        : // zod's optional keys read `| undefined`; the registry treats an undefined option as absent.
          new CircuitBreakerRegistry({ ...(route.breaker as CircuitBreakerRegistryOptions), clock: this.#clock });
    const client = this.#makeClient(route.service as string, {
      ...(breakers === undefined ? {} : { breakers }),
      ...(route.strategy === undefined ? {} : { strategy: route.strategy }),
      ...(route.retry === undefined ? {} : { retry: route.retry as RetryOptions | false }),
      ...(route.timeoutMs === undefined ? {} : { deadlineMs: route.timeoutMs }),
      ...(route.attemptTimeoutMs === undefined ? {} : { attemptTimeoutMs: route.attemptTimeoutMs }),
    });
    this.#clients.set(key, { client, breakers });
    return client;
  }

  #makeClient(service: string, overrides: Partial<ConstructorParameters<typeof ServiceClient>[0]>): ServiceClient {
    const app = this.app;
    if (!this.#watchedServices.has(service)) {
      // The shared transport closes the pools of instances that leave.
      this.#transport.watch(service, app.discovery);
      this.#watchedServices.add(service);
    }
    const client = new ServiceClient({
      service,
      discovery: app.discovery,
      caller: app.service,
      breakers: app.breakers,
      clock: this.#clock,
      telemetry: app.telemetry,
      transport: this.#transport,
      stack: (stack) => addTracing(stack),
      ...overrides,
    });
    // The rules of the service it calls apply over the route's options.
    app.rules?.add(client);
    return client;
  }

  /** The session's user, none (route optional, or no session needed), or the refusal to answer. */
  async #authorize(route: GatewayRoute, headers: IncomingHttpHeaders): Promise<SessionUser | undefined | Refusal> {
    const sessions = this.#sessions;
    if (route.auth === 'none' || sessions === undefined) return undefined;
    const result = await sessions.check(headers);
    if (result.kind === 'valid') return result.user;
    if (route.auth === 'optional') return undefined;
    if (result.kind === 'unavailable') {
      return {
        status: 503,
        code: 'AUTH_UNAVAILABLE',
        message: `the session check (service "${sessions.service}") is unavailable: ${result.reason}; try again`,
      };
    }
    return {
      status: 401,
      code: 'UNAUTHENTICATED',
      message: 'sign in first: no valid session token (Authorization: Bearer or the "session" cookie)',
    };
  }

  #mount(http: FastifyInstance): void {
    const adminPath = this.#adminPath;
    http.get(adminPath, async (_request, reply) =>
      reply
        .header('cache-control', 'no-store')
        .header('content-security-policy', adminPageSecurityPolicy)
        .header('x-content-type-options', 'nosniff')
        .type('text/html; charset=utf-8')
        .send(renderAdminPage(this.describe(), `${adminPath}.json`)),
    );
    http.get(`${adminPath}.json`, async (_request, reply) =>
      reply.header('cache-control', 'no-store').send(this.describe()),
    );
    http.server.on('upgrade', (request, socket, head) => this.#tunnels.handle(request, socket, head));
    // After the app's drain (its close() calls the server's close then): tunnels still open
    // are closed, so that the server's close is not held by them and their clients reconnect.
    http.addHook('preClose', (done) => {
      const closed = this.#tunnels.closeAll();
      if (closed > 0) http.log.info(`closed ${closed} WebSocket tunnels at shutdown`);
      done();
    });
    http.addHook('onClose', async () => this.close());

    // Proxied routes in a scope of their own: raw bodies (no JSON parsing) and the route hooks
    // apply to them only, not to the app's /health, /metrics, /trellis and the admin page.
    void http.register(async (scope) => {
      scope.decorateRequest('gatewayRoute', undefined);
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', (request, payload, done) => readBody(request, payload, done));
      scope.addHook('onRequest', (request, reply, done) => {
        if (this.#admit(request, reply)) done();
      });
      scope.route({ method: proxiedMethods, url: '*', exposeHeadRoute: false, handler: this.#handle });
    });
  }

  /** The route of the request, its rate limit, CORS preflight and declared length; false when answered here. */
  #admit(request: FastifyRequest, reply: FastifyReply): boolean {
    const url = request.url;
    if (hasDotSegment(url)) {
      void reply.code(400).send({ error: 'INVALID_PATH', message: 'the path has "." or ".." segments' });
      return false;
    }
    const route = this.#table.find(request.method, url, request.headers);
    if (route === undefined) {
      const q = url.indexOf('?');
      void reply
        .code(404)
        .send({ error: 'NO_ROUTE', message: `no route matches ${request.method} ${q === -1 ? url : url.slice(0, q)}` });
      return false;
    }
    request.gatewayRoute = route;
    request.serverSpan?.setRoute(route.template);
    if (route.rateLimit !== undefined && refusedByRate(route.rateLimit.limiter(request.headers, request.ip), reply))
      return false;
    if (route.cors !== undefined && route.cors.preflight(request, reply)) return false;
    const length = request.headers['content-length'];
    if (length !== undefined && Number(length) > route.bodyLimitBytes) {
      void reply.code(413).send(tooLarge(route.bodyLimitBytes));
      return false;
    }
    return true;
  }

  readonly #handle = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const route = request.gatewayRoute as GatewayRoute;
    const target = route.target;
    if (target.kind === 'redirect') {
      const q = request.url.indexOf('?');
      return reply.redirect(q === -1 ? target.to : target.to + request.url.slice(q), 308);
    }
    if (target.kind === 'static') return serveStatic(request, reply, route, target.root, target.file);
    const client = route.client as ServiceClient;
    let user: SessionUser | undefined;
    if (route.auth !== 'none') {
      const authorized = await this.#authorize(route, request.headers);
      if (authorized !== undefined && 'status' in authorized) {
        return reply.code(authorized.status).send({ error: authorized.code, message: authorized.message });
      }
      user = authorized;
    }
    const headers = forwardedHeaders(request.headers, {
      clientAddress: request.ip,
      proto: request.protocol,
      host: request.headers.host,
      prefix: route.forwardedPrefix,
      user,
    });
    let answer;
    try {
      answer = await client.request({
        method: request.method,
        path: route.targetPath(request.url),
        headers,
        body: request.body,
        ...(route.idempotent === undefined ? {} : { idempotent: route.idempotent }),
      });
    } catch (error) {
      // A browser loading a page gets a page that says what is down; everyone else the app's JSON.
      if (!TrellisError.is(error) || !wantsPage(request)) throw error;
      const status = errorStatus(error);
      return reply
        .code(status)
        .headers({ 'content-security-policy': unavailablePagePolicy, 'cache-control': 'no-store', vary: 'accept' })
        .type('text/html; charset=utf-8')
        .send(renderUnavailablePage(client.service, status, error.message));
    }
    void reply
      .code(answer.status)
      .headers(replyHeaders(answer.headers, request.method === 'HEAD'))
      .header('x-served-by', answer.instance.id);
    route.cors?.decorate(request, reply);
    return reply.send(answer.body);
  };

  /** Stops watching the routes file and closes the route clients (the app closes with its own close()). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watch?.close();
    this.#tunnels.closeAll();
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    await Promise.all(clients.map((c) => c.client.close()));
    await Promise.all(clients.flatMap((c) => (c.breakers === undefined ? [] : [c.breakers.close()])));
    await this.#sessionClient?.close();
    await this.#transport.close();
  }
}

// Routes with the same service and policies share one client (its load balancer's view, its
// retry budget); the order of keys is the schema's, so equal policies give equal keys.
function policyKey(route: RouteConfig): string {
  return JSON.stringify([
    route.service,
    route.strategy ?? null,
    route.retry ?? null,
    route.breaker ?? null,
    route.timeoutMs ?? null,
    route.attemptTimeoutMs ?? null,
  ]);
}

function hasDotSegment(url: string): boolean {
  if (!url.includes('/.') && !url.includes('%2')) return false;
  const q = url.indexOf('?');
  const pathPart = (q === -1 ? url : url.slice(0, q)).replace(/%2e/gi, '.');
  return /\/\.\.?(\/|$)/.test(pathPart);
}

function tooLarge(limit: number): { error: string; message: string; limitBytes: number } {
  return {
    error: 'BODY_TOO_LARGE',
    message: `the request body is over this route's limit of ${limit} bytes`,
    limitBytes: limit,
  };
}

class BodyTooLargeError extends Error {
  readonly statusCode = 413;
  readonly code = 'BODY_TOO_LARGE';
  constructor(limit: number) {
    super(tooLarge(limit).message);
  }
}

// The body as bytes, whatever its type, up to the route's limit: retries need it whole anyway.
function readBody(
  request: FastifyRequest,
  payload: NodeJS.ReadableStream,
  done: (error: Error | null, body?: unknown) => void,
): void {
  const limit = request.gatewayRoute?.bodyLimitBytes ?? 0;
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  payload.on('data', (chunk: Buffer) => {
    if (finished) return;
    size += chunk.length;
    if (size > limit) {
      finished = true;
      done(new BodyTooLargeError(limit));
      return;
    }
    chunks.push(chunk);
  });
  payload.on('end', () => {
    if (finished) return;
    finished = true;
    done(null, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
  });
  payload.on('error', (error: Error) => {
    if (finished) return;
    finished = true;
    done(error);
  });
}

async function serveStatic(
  request: FastifyRequest,
  reply: FastifyReply,
  route: GatewayRoute,
  root: string,
  file: string | undefined,
): Promise<FastifyReply> {
  const target = file === undefined ? (route.targetPath(request.url).split('?')[0] ?? '/') : `/${file}`;
  const sent = await send(request.raw, target, { root, dotfiles: 'deny', index: ['index.html'] });
  if (sent.type === 'error') {
    const status = sent.statusCode;
    return reply.code(status).send({
      error: status === 404 ? 'NOT_FOUND' : 'STATIC_FAILED',
      message: status === 404 ? `no file ${target}` : 'cannot serve the file',
    });
  }
  return reply.code(sent.statusCode).headers(sent.headers).send(sent.stream);
}
