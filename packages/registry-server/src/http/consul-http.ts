import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import { methodNotAllowed, type RouteAcl } from '../acl/route-acl.js';

// What every route module of the Consul API shares: plain-text errors as Consul answers them,
// Consul's query-parameter conventions, and 405 for a known path with another method.

const allMethods: HTTPMethods[] = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

export type Query = Record<string, string | string[] | undefined>;

/**
 * One route with the ACL rights it needs (see {@link RouteAcl}), plus a 405 for the other
 * methods on the same path, as Consul answers.
 */
export function route(
  app: FastifyInstance,
  method: HTTPMethods,
  url: string,
  acl: RouteAcl,
  handler: (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>,
): void {
  app.route({ method, url, config: { acl }, handler });
  app.route({
    // Fastify answers HEAD itself wherever there is a GET.
    method: allMethods.filter((m) => m !== method && !(method === 'GET' && m === 'HEAD')),
    url,
    config: { acl: methodNotAllowed },
    handler: async (request, reply) => text(reply.header('Allow', method), 405, `method ${request.method} not allowed`),
  });
}

const decoded = new WeakMap<FastifyRequest, { readonly value: unknown } | { readonly error: unknown }>();

/**
 * The request's text body decoded by `decode`, once per request: the route's ACL need and its
 * handler both read it, and the second call returns the first one's value (or throws its error).
 *
 * @example
 * const def = decodeOnce(request, decodeServiceDefinition); // throws RequestDecodeError
 */
export function decodeOnce<T>(request: FastifyRequest, decode: (body: string | undefined) => T): T {
  let done = decoded.get(request);
  if (done === undefined) {
    try {
      done = { value: decode(typeof request.body === 'string' ? request.body : undefined) };
    } catch (error) {
      done = { error };
    }
    decoded.set(request, done);
  }
  if ('error' in done) throw done.error;
  return done.value as T;
}

// Aborts when the client closes the connection before its answer is sent, so that a held
// blocking query does not outlive its client.
export function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}

export function text(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).type('text/plain; charset=utf-8').send(message);
}

export function query(request: FastifyRequest): Query {
  return (request.query ?? {}) as Query;
}

// Go's url.Values.Get: the first value of a repeated parameter.
export function firstValue(request: FastifyRequest, key: string): string | undefined {
  const value = query(request)[key];
  return Array.isArray(value) ? value[0] : value;
}

export function allValues(request: FastifyRequest, key: string): string[] {
  const value = query(request)[key];
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

// Consul's boolean parameters: present with no value means true, otherwise strconv.ParseBool.
export function queryFlag(request: FastifyRequest, key: string): boolean | 'invalid' {
  const value = firstValue(request, key);
  if (value === undefined) return false;
  if (['', '1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return 'invalid';
}

/** The headers Consul puts on every read of replicated state; this server is its own leader. */
export function consistencyHeaders(index: number): Record<string, string> {
  return { 'X-Consul-Index': String(index), 'X-Consul-KnownLeader': 'true', 'X-Consul-LastContact': '0' };
}
