// Attribute names: OpenTelemetry's HTTP semantic conventions (stable since semconv 1.23), and
// Trellis's own under `trellis.`. Written out rather than imported from
// @opentelemetry/semantic-conventions, so that the stages load @opentelemetry/api alone.

export const HTTP_REQUEST_METHOD = 'http.request.method';
export const HTTP_REQUEST_METHOD_ORIGINAL = 'http.request.method_original';
export const HTTP_REQUEST_RESEND_COUNT = 'http.request.resend_count';
export const HTTP_RESPONSE_STATUS_CODE = 'http.response.status_code';
export const HTTP_ROUTE = 'http.route';
export const SERVER_ADDRESS = 'server.address';
export const SERVER_PORT = 'server.port';
export const CLIENT_ADDRESS = 'client.address';
export const URL_FULL = 'url.full';
export const URL_PATH = 'url.path';
export const URL_QUERY = 'url.query';
export const URL_SCHEME = 'url.scheme';
export const URL_TEMPLATE = 'url.template';
export const USER_AGENT_ORIGINAL = 'user_agent.original';
export const NETWORK_PROTOCOL_VERSION = 'network.protocol.version';
export const ERROR_TYPE = 'error.type';

export const TRELLIS_SERVICE = 'trellis.service';
export const TRELLIS_INSTANCE_ID = 'trellis.instance.id';
export const TRELLIS_ATTEMPT = 'trellis.attempt';
export const TRELLIS_ATTEMPT_KIND = 'trellis.attempt.kind';
export const TRELLIS_ATTEMPTS = 'trellis.attempts';
export const TRELLIS_STRATEGY = 'trellis.lb.strategy';
export const TRELLIS_ROUTE = 'trellis.lb.route';
export const TRELLIS_PANIC = 'trellis.lb.panic';
export const TRELLIS_BREAKER_STATE = 'trellis.breaker.state';
export const TRELLIS_FAULT = 'trellis.fault';
export const TRELLIS_FAULT_RULE = 'trellis.fault.rule';

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

/**
 * The method as semconv records it: a known one as is, any other as `_OTHER` (the original goes
 * in `http.request.method_original`), so that a span name never carries an unbounded value.
 */
export function semconvMethod(method: string): string {
  return knownMethods.has(method) ? method : '_OTHER';
}

/** `GET /users/:id` with a template, `GET` without, `HTTP` for an unknown method (semconv's rule). */
export function httpSpanName(method: string, template: string | undefined): string {
  const known = semconvMethod(method);
  const base = known === '_OTHER' ? 'HTTP' : known;
  return template === undefined ? base : `${base} ${template}`;
}

/** What `error.type` says of a thrown value: a Trellis error's code, else the class name. */
export function errorType(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') {
    return error.code;
  }
  return error instanceof Error ? error.constructor.name : '_OTHER';
}
