import type { FastifyInstance, FastifyRequest } from 'fastify';
import { startServerSpan, withServerSpan, type ServerSpan } from '@trellis/tracing';
import { healthRoutes } from './health-routes.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's SERVER span (non-recording when no SDK is set up). */
    serverSpan: ServerSpan | undefined;
  }
}

/** Routes polled by machines (and the status page), whose spans would bury the ones people look for. */
const untraced: ReadonlySet<string> = new Set([...healthRoutes, '/metrics', '/trellis']);

const failures = new WeakMap<FastifyRequest, unknown>();

/**
 * Opens a SERVER span per request from its first hook, joined to the caller's trace by the
 * propagators (W3C by default), and makes it the active OTel context for the hooks and the
 * handler, so that the calls a handler makes are its children and its log lines carry its ids.
 * Register before the app's own hooks: the context is entered by wrapping `done` of the hooks
 * (onRequest, preHandler) that Fastify runs the rest of the request from, as the inbound scope is.
 */
export function traceRequests(http: FastifyInstance): void {
  http.decorateRequest('serverSpan', undefined);
  http.addHook('onRequest', (request, _reply, done) => {
    const route = request.routeOptions.url;
    if (route !== undefined && untraced.has(route)) {
      done();
      return;
    }
    const served = startServerSpan({
      method: request.method,
      url: request.url,
      headers: request.headers,
      route,
      // Getters: read only when the span records.
      get scheme() {
        return request.protocol;
      },
      get serverAddress() {
        return request.hostname;
      },
      get serverPort() {
        return request.port ?? undefined;
      },
      get clientAddress() {
        return request.ip;
      },
      get protocolVersion() {
        return request.raw.httpVersion;
      },
    });
    request.serverSpan = served;
    withServerSpan(served, done);
  });
  // Body parsing may have left the context: enter it again for the handler.
  http.addHook('preHandler', (request, _reply, done) => {
    const served = request.serverSpan;
    if (served === undefined) done();
    else withServerSpan(served, done);
  });
  http.addHook('onError', (request, _reply, error, done) => {
    failures.set(request, error);
    done();
  });
  http.addHook('onResponse', (request, reply, done) => {
    request.serverSpan?.end(reply.statusCode, failures.get(request));
    done();
  });
  http.addHook('onRequestAbort', (request, done) => {
    request.serverSpan?.end(undefined, new Error('the caller closed the connection before the answer'));
    done();
  });
}
