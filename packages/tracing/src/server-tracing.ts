import {
  context as otelContext,
  INVALID_SPAN_CONTEXT,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type TracerProvider,
} from '@opentelemetry/api';
import {
  CLIENT_ADDRESS,
  ERROR_TYPE,
  errorType,
  HTTP_REQUEST_METHOD,
  HTTP_REQUEST_METHOD_ORIGINAL,
  HTTP_RESPONSE_STATUS_CODE,
  HTTP_ROUTE,
  httpSpanName,
  NETWORK_PROTOCOL_VERSION,
  semconvMethod,
  SERVER_ADDRESS,
  SERVER_PORT,
  URL_PATH,
  URL_QUERY,
  URL_SCHEME,
  USER_AGENT_ORIGINAL,
} from './attributes.js';
import { activeTracer } from './tracer.js';

/** A request a server received, as {@link startServerSpan} reads it (Node's `IncomingMessage` fields, framework-neutral). */
export interface ServedRequestInfo {
  /** The HTTP method, as received. */
  readonly method: string;
  /** The request target: path and query string, e.g. "/users/42?fields=name". */
  readonly url: string;
  /** The request headers, names in lower case (Node's `IncomingHttpHeaders`). */
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  /** The route template that matched, e.g. "/users/:id"; undefined when none did. */
  readonly route?: string | undefined;
  /** Default "http". */
  readonly scheme?: string;
  /** The address and port this server was reached at. */
  readonly serverAddress?: string | undefined;
  readonly serverPort?: number | undefined;
  /** The peer's address. */
  readonly clientAddress?: string | undefined;
  /** "1.1", "2". */
  readonly protocolVersion?: string | undefined;
}

/** A SERVER span in progress: make {@link context} active while serving, then {@link end} it. */
export interface ServerSpan {
  readonly span: Span;
  /** The context to serve the request in: the caller's trace (extracted from the headers) with this span. */
  readonly context: Context;
  /** Names the span by the route once it is known (`GET /users/:id`), and records it as `http.route`. */
  setRoute(route: string | undefined): void;
  /**
   * Ends the span with the status answered, or with the error when none was. A status from 500
   * up is an error (`error.type` the error's code or the status); a 4xx is the caller's, not the
   * server's (semconv). Safe to call twice; the first wins.
   */
  end(status: number | undefined, error?: unknown): void;
}

export interface ServerTracingOptions {
  /** The provider spans are started on; default the global one. */
  readonly tracerProvider?: TracerProvider;
}

/**
 * Starts the SERVER span of a request: the caller's trace context is extracted from the headers
 * with the registered propagators (W3C `traceparent` and `baggage` by default), the span named
 * by OTel's HTTP conventions (`GET /users/:id`, or `GET` when no route matched) and given the
 * semconv server attributes. With no SDK set up nothing is built: a shared non-recording span
 * comes back, with the root context.
 *
 * @example
 * import http from 'node:http';
 * http.createServer((req, res) => {
 *   const served = startServerSpan({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers });
 *   res.on('finish', () => served.end(res.statusCode));
 *   withServerSpan(served, () => res.end('ok'));
 * });
 */
export function startServerSpan(request: ServedRequestInfo, options: ServerTracingOptions = {}): ServerSpan {
  const tracer = activeTracer(options.tracerProvider);
  if (tracer === undefined) return untraced;
  // A request starts a trace of its own or joins the caller's: never the context it happened to arrive in.
  const parent = propagation.extract(ROOT_CONTEXT, request.headers);
  const method = semconvMethod(request.method);
  const span = tracer.startSpan(httpSpanName(request.method, request.route), { kind: SpanKind.SERVER }, parent);
  const active = trace.setSpan(parent, span);
  if (!span.isRecording()) return new QuietServerSpan(span, active);
  const query = request.url.indexOf('?');
  span.setAttribute(HTTP_REQUEST_METHOD, method);
  if (method === '_OTHER') span.setAttribute(HTTP_REQUEST_METHOD_ORIGINAL, request.method);
  span.setAttribute(URL_SCHEME, request.scheme ?? 'http');
  span.setAttribute(URL_PATH, query < 0 ? request.url : request.url.slice(0, query));
  if (query >= 0) span.setAttribute(URL_QUERY, request.url.slice(query + 1));
  if (request.route !== undefined) span.setAttribute(HTTP_ROUTE, request.route);
  if (request.serverAddress !== undefined) span.setAttribute(SERVER_ADDRESS, request.serverAddress);
  if (request.serverPort !== undefined) span.setAttribute(SERVER_PORT, request.serverPort);
  if (request.clientAddress !== undefined) span.setAttribute(CLIENT_ADDRESS, request.clientAddress);
  if (request.protocolVersion !== undefined) span.setAttribute(NETWORK_PROTOCOL_VERSION, request.protocolVersion);
  const agent = request.headers['user-agent'];
  if (typeof agent === 'string') span.setAttribute(USER_AGENT_ORIGINAL, agent);
  return new RecordingServerSpan(span, active, request.method);
}

/**
 * Runs `fn` with `served.context` active, so that spans and log lines made while serving (and
 * calls of a ServiceClient) are the request's.
 *
 * @example
 * const served = startServerSpan({ method: 'GET', url: '/users/42', route: '/users/:id', headers: {} });
 * const user = await withServerSpan(served, () => users.get('/users/42')); // the call is the request's child
 * served.end(200);
 */
export function withServerSpan<T>(served: ServerSpan, fn: () => T): T {
  return otelContext.with(served.context, fn);
}

class QuietServerSpan implements ServerSpan {
  readonly span: Span;
  readonly context: Context;

  constructor(span: Span, context: Context) {
    this.span = span;
    this.context = context;
  }

  setRoute(): void {}

  end(): void {}
}

/** What a request gets while no SDK is set up: nothing to record, nothing to carry on. */
const untraced: ServerSpan = new QuietServerSpan(trace.wrapSpanContext(INVALID_SPAN_CONTEXT), ROOT_CONTEXT);

class RecordingServerSpan implements ServerSpan {
  readonly span: Span;
  readonly context: Context;
  readonly #method: string;
  #ended = false;

  constructor(span: Span, context: Context, method: string) {
    this.span = span;
    this.context = context;
    this.#method = method;
  }

  setRoute(route: string | undefined): void {
    if (route === undefined || this.#ended) return;
    this.span.updateName(httpSpanName(this.#method, route));
    this.span.setAttribute(HTTP_ROUTE, route);
  }

  end(status: number | undefined, error?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    const span = this.span;
    if (status !== undefined) span.setAttribute(HTTP_RESPONSE_STATUS_CODE, status);
    if (status === undefined || status >= 500) {
      span.setAttribute(
        ERROR_TYPE,
        error !== undefined ? errorType(error) : status === undefined ? '_OTHER' : String(status),
      );
      if (error instanceof Error) span.recordException(error);
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
  }
}
