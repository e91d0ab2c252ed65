import path from 'node:path';
import type { IncomingHttpHeaders } from 'node:http';
import type { Clock } from '@trellis/core';
import type { ServiceClient } from '@trellis/client';
import { PerKey, TokenBucket } from '@trellis/resilience';
import { Cors } from './cors.js';
import type { RateLimitConfig, RouteConfig } from './route-schema.js';

/** Where a route sends what it matches. */
export type RouteTarget =
  | { readonly kind: 'service'; readonly service: string }
  | { readonly kind: 'static'; readonly root: string; readonly file: string | undefined }
  | { readonly kind: 'redirect'; readonly to: string };

/** A client key's token bucket, per gateway or per route. */
export class ClientRateLimit {
  readonly #perKey: PerKey<TokenBucket>;
  readonly #header: string | undefined;

  constructor(config: RateLimitConfig, clock: Clock) {
    const { ratePerSecond } = config;
    const burst = config.burst ?? ratePerSecond;
    this.#perKey = new PerKey({
      create: () => new TokenBucket({ ratePerSecond, burst, clock }),
      ...(config.maxKeys === undefined ? {} : { maxKeys: config.maxKeys }),
      clock,
    });
    this.#header = typeof config.key === 'object' ? config.key.header.toLowerCase() : undefined;
  }

  /** The bucket of a request's client: its header's value when the key is a header (its address without one), else its address. */
  limiter(headers: IncomingHttpHeaders, address: string): TokenBucket {
    const header = this.#header === undefined ? undefined : headers[this.#header];
    const key = typeof header === 'string' && header !== '' ? `h:${header}` : `ip:${address}`;
    return this.#perKey.get(key);
  }

  /** Client keys remembered now. */
  get keys(): number {
    return this.#perKey.size;
  }
}

/** What compiling a route needs from the gateway. */
export interface RouteEnvironment {
  /** The client of a service route's policy (shared by routes with the same one). */
  readonly clientFor: (route: RouteConfig) => ServiceClient;
  /** Folder that static roots are relative to. */
  readonly baseDir: string;
  readonly bodyLimitBytes: number;
  readonly cors: Cors | undefined;
  readonly rateLimit: ClientRateLimit | undefined;
  readonly clock: Clock;
}

/** A route ready to match: its settings resolved against the gateway's defaults. */
export class GatewayRoute {
  readonly index: number;
  readonly name: string;
  readonly config: RouteConfig;
  readonly target: RouteTarget;
  /** The governed client of a service route. */
  readonly client: ServiceClient | undefined;
  readonly auth: 'required' | 'optional' | 'none';
  readonly websocket: boolean;
  readonly bodyLimitBytes: number;
  readonly cors: Cors | undefined;
  readonly rateLimit: ClientRateLimit | undefined;
  /** Per-call `idempotent` for the client: true when the route says every method may be retried. */
  readonly idempotent: boolean | undefined;
  /** What spans name the route by (`http.route`): "/api/users/*", an exact path, or the route's name. */
  readonly template: string;
  /** The prefix the route removes or replaces, as X-Forwarded-Prefix says it ("/forum"). */
  readonly forwardedPrefix: string | undefined;
  readonly #path: string | undefined;
  readonly #prefix: string | undefined;
  readonly #host: string | undefined;
  readonly #headerName: string | undefined;
  readonly #headerValue: string | undefined;
  readonly #headerRegex: RegExp | undefined;
  readonly #methods: ReadonlySet<string> | undefined;
  readonly #strip: boolean;
  readonly #rewrite: string | undefined;

  constructor(config: RouteConfig, index: number, env: RouteEnvironment) {
    this.index = index;
    this.name = config.name ?? `route-${index}`;
    this.config = config;
    const { match } = config;
    this.#path = match.path;
    this.#prefix = match.pathPrefix;
    this.#host = match.host?.toLowerCase();
    this.#headerName = match.header?.name.toLowerCase();
    this.#headerValue = match.header?.value;
    this.#headerRegex = match.header?.regex === undefined ? undefined : new RegExp(match.header.regex);
    this.#methods = match.methods === undefined ? undefined : new Set(match.methods.map((m) => m.toUpperCase()));
    this.template = match.path ?? (match.pathPrefix === undefined ? this.name : `${match.pathPrefix}*`);
    this.#strip = config.stripPrefix === true;
    this.#rewrite = config.rewritePrefix;
    this.forwardedPrefix =
      (this.#strip || this.#rewrite !== undefined) && match.pathPrefix !== undefined && match.pathPrefix !== '/'
        ? match.pathPrefix.replace(/\/+$/, '')
        : undefined;
    if (config.service !== undefined) {
      this.target = { kind: 'service', service: config.service };
      this.client = env.clientFor(config);
    } else if (config.static !== undefined) {
      this.target = { kind: 'static', root: path.resolve(env.baseDir, config.static.root), file: config.static.file };
      this.client = undefined;
    } else {
      this.target = { kind: 'redirect', to: config.redirect as string };
      this.client = undefined;
    }
    this.auth = config.auth ?? 'none';
    this.websocket = config.websocket === true;
    this.bodyLimitBytes = config.bodyLimitBytes ?? env.bodyLimitBytes;
    this.cors = config.cors === false ? undefined : config.cors === undefined ? env.cors : new Cors(config.cors);
    this.rateLimit =
      config.rateLimit === false
        ? undefined
        : config.rateLimit === undefined
          ? env.rateLimit
          : new ClientRateLimit(config.rateLimit, env.clock);
    this.idempotent = config.idempotent === true ? true : undefined;
  }

  /** Whether the request (method, target with its query string, headers) is this route's. */
  matches(method: string, url: string, headers: IncomingHttpHeaders): boolean {
    if (this.#prefix !== undefined && !url.startsWith(this.#prefix)) return false;
    if (this.#path !== undefined && pathOf(url) !== this.#path) return false;
    if (this.#methods !== undefined && !this.#methods.has(method)) return false;
    if (this.#host !== undefined && hostName(headers.host) !== this.#host) return false;
    if (this.#headerName !== undefined) {
      const value = headers[this.#headerName];
      const text = typeof value === 'string' ? value : value?.join(', ');
      if (text === undefined) return false;
      if (this.#headerValue !== undefined && text !== this.#headerValue) return false;
      if (this.#headerRegex !== undefined && !this.#headerRegex.test(text)) return false;
    }
    return true;
  }

  /** The path (and query string) sent on: the prefix removed or replaced, always starting with "/". */
  targetPath(url: string): string {
    const prefix = this.#prefix;
    if (prefix === undefined || (!this.#strip && this.#rewrite === undefined)) return url;
    const rest = url.slice(prefix.length);
    const tail = rest.startsWith('/') ? rest : `/${rest}`;
    const rewrite = this.#rewrite;
    if (rewrite === undefined || rewrite === '/') return tail;
    const base = rewrite.endsWith('/') ? rewrite.slice(0, -1) : rewrite;
    // "/forum/" rewritten to "/x": "/forum/" → "/x", "/forum/a" → "/x/a".
    return rest === '' ? rewrite : base + tail;
  }
}

/** The routes in force, first match wins. */
export class RouteTable {
  readonly routes: readonly GatewayRoute[];

  constructor(routes: readonly GatewayRoute[]) {
    this.routes = routes;
  }

  find(method: string, url: string, headers: IncomingHttpHeaders): GatewayRoute | undefined {
    const routes = this.routes;
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i] as GatewayRoute;
      if (route.matches(method, url, headers)) return route;
    }
    return undefined;
  }
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** The host name of a Host header, lower case, without the port (IPv6 brackets kept). */
export function hostName(host: string | undefined): string | undefined {
  if (host === undefined) return undefined;
  const end = host.startsWith('[') ? host.indexOf(']') + 1 : host.indexOf(':');
  return (end <= 0 ? host : host.slice(0, end)).toLowerCase();
}
