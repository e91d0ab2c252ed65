import {
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Span,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import type { FastifyInstance, FastifyRequest } from 'fastify';

// The registry server depends on @opentelemetry/api alone (no @trellis/tracing, a package above
// it): the same semconv names as TrellisApp's SERVER spans, written out.
const knownMethods: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
]);

let provider: TracerProvider | undefined;
let tracer: Tracer | undefined;

// The global provider's tracer, kept while the provider stays the same object: an SDK shut
// down and another started replaces it, and a tracer kept forever would feed the old one.
function currentTracer(): Tracer {
  const current = trace.getTracerProvider();
  if (current !== provider || tracer === undefined) {
    provider = current;
    tracer = current.getTracer('@trellis/registry-server', '0.1.0');
  }
  return tracer;
}

const spans = new WeakMap<FastifyRequest, Span>();
const failures = new WeakMap<FastifyRequest, unknown>();

/**
 * A SERVER span per request of the registry's HTTP API, joined to the caller's trace (the
 * propagators registered with the OTel API, W3C by default) and named by OTel's HTTP
 * conventions (`PUT /v1/agent/check/pass/:checkId`). With no SDK set up in the process, the
 * span is non-recording and nothing else is built. A blocking query's span lasts as long as
 * the query is held.
 */
export function registerRequestTracing(app: FastifyInstance): void {
  app.addHook('onRequest', (request, _reply, done) => {
    const route = request.routeOptions.url;
    const method = knownMethods.has(request.method) ? request.method : '_OTHER';
    const base = method === '_OTHER' ? 'HTTP' : method;
    const span = currentTracer().startSpan(
      route === undefined ? base : `${base} ${route}`,
      { kind: SpanKind.SERVER },
      propagation.extract(ROOT_CONTEXT, request.headers),
    );
    if (span.isRecording()) {
      const query = request.url.indexOf('?');
      span.setAttribute('http.request.method', method);
      if (method === '_OTHER') span.setAttribute('http.request.method_original', request.method);
      span.setAttribute('url.scheme', request.protocol);
      span.setAttribute('url.path', query < 0 ? request.url : request.url.slice(0, query));
      if (query >= 0) span.setAttribute('url.query', request.url.slice(query + 1));
      if (route !== undefined) span.setAttribute('http.route', route);
      span.setAttribute('server.address', request.hostname);
      if (request.port !== null) span.setAttribute('server.port', request.port);
      span.setAttribute('client.address', request.ip);
      spans.set(request, span);
    }
    done();
  });
  app.addHook('onError', (request, _reply, error, done) => {
    failures.set(request, error);
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    const span = spans.get(request);
    if (span !== undefined) end(span, reply.statusCode, failures.get(request));
    done();
  });
  app.addHook('onRequestAbort', (request, done) => {
    const span = spans.get(request);
    if (span !== undefined) end(span, undefined, undefined);
    done();
  });
}

// A 4xx is the caller's error, not the server's (semconv): only 5xx and no answer are marked.
function end(span: Span, status: number | undefined, error: unknown): void {
  if (status !== undefined) span.setAttribute('http.response.status_code', status);
  if (status === undefined || status >= 500) {
    const code =
      typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
        ? error.code
        : undefined;
    span.setAttribute('error.type', code ?? (status === undefined ? '_OTHER' : String(status)));
    if (error instanceof Error) span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}
