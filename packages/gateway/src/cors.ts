import type { FastifyReply, FastifyRequest } from 'fastify';
import type { CorsConfig } from './route-schema.js';

const defaultMethods = 'GET,HEAD,PUT,PATCH,POST,DELETE';

/**
 * CORS for a gateway or a route, as Fastify hooks of the gateway's own rather than
 * @fastify/cors: the settings depend on the route matched at run time, which the plugin's
 * per-server options do not know, and the answer is a handful of headers. Preflights
 * (`OPTIONS` with `Access-Control-Request-Method`) are answered by the gateway with 204; other
 * requests from an allowed origin get `Access-Control-Allow-Origin` (and `-Credentials`,
 * `-Expose-Headers`) on the proxied reply.
 */
export class Cors {
  readonly #any: boolean;
  readonly #origins: ReadonlySet<string>;
  readonly #credentials: boolean;
  readonly #methods: string;
  readonly #allowedHeaders: string | undefined;
  readonly #exposedHeaders: string | undefined;
  readonly #maxAge: string | undefined;

  constructor(config: CorsConfig) {
    this.#any = config.origins === '*';
    this.#origins = new Set(config.origins === '*' ? [] : config.origins);
    this.#credentials = config.credentials === true;
    this.#methods = config.methods?.join(',') ?? defaultMethods;
    this.#allowedHeaders = config.allowedHeaders?.join(',');
    this.#exposedHeaders = config.exposedHeaders?.join(',');
    this.#maxAge = config.maxAgeSeconds === undefined ? undefined : String(config.maxAgeSeconds);
  }

  /**
   * Answers a preflight request (204, with the allow headers when the origin is allowed).
   * @returns true when the request was one, and is answered.
   */
  preflight(request: FastifyRequest, reply: FastifyReply): boolean {
    if (request.method !== 'OPTIONS' || request.headers['access-control-request-method'] === undefined) return false;
    const origin = request.headers.origin;
    void reply.header('vary', 'Origin, Access-Control-Request-Headers');
    if (origin !== undefined && this.#allowed(origin)) {
      this.#allowOrigin(reply, origin);
      void reply.header('access-control-allow-methods', this.#methods);
      const headers = this.#allowedHeaders ?? request.headers['access-control-request-headers'];
      if (headers !== undefined && headers !== '') void reply.header('access-control-allow-headers', headers);
      if (this.#maxAge !== undefined) void reply.header('access-control-max-age', this.#maxAge);
    }
    void reply.code(204).send();
    return true;
  }

  /** Adds the CORS headers of an actual (not preflight) request to its reply. */
  decorate(request: FastifyRequest, reply: FastifyReply): void {
    const origin = request.headers.origin;
    if (origin === undefined || !this.#allowed(origin)) return;
    this.#allowOrigin(reply, origin);
    if (this.#exposedHeaders !== undefined) void reply.header('access-control-expose-headers', this.#exposedHeaders);
  }

  #allowed(origin: string): boolean {
    return this.#any || this.#origins.has(origin);
  }

  #allowOrigin(reply: FastifyReply, origin: string): void {
    // With credentials the origin must be named, never "*".
    const named = !this.#any || this.#credentials;
    void reply.header('access-control-allow-origin', named ? origin : '*');
    if (named) void reply.header('vary', 'Origin');
    if (this.#credentials) void reply.header('access-control-allow-credentials', 'true');
  }
}
