import { TrellisError } from '@trellis/core';
import { parseGoDuration } from '../http/go-duration.js';

/** The states of a Consul health check. */
export type CheckStatus = 'passing' | 'warning' | 'critical';

const checkStatuses: readonly string[] = ['passing', 'warning', 'critical'];

/** What the server requests for an HTTP check, every `intervalMs`. */
export interface HttpCheckSpec {
  /** An absolute `http:` or `https:` URL. */
  readonly url: string;
  /** `GET` unless the request named another (`Method`). */
  readonly method: string;
  /** Extra request headers, several values a name as in Go's `http.Header`. */
  readonly header: Readonly<Record<string, readonly string[]>>;
  /** The request body (`Body`); empty for none. */
  readonly body: string;
  readonly intervalMs: number;
  /** How long one request may take before the check turns critical; default 10 s. */
  readonly timeoutMs: number;
  /** Accept any certificate for an `https:` URL (`TLSSkipVerify`). */
  readonly tlsSkipVerify: boolean;
  /** Judge a redirect answer itself instead of following it (`DisableRedirects`); default false. */
  readonly disableRedirects?: boolean;
}

/** What the server runs for a script check (`Args`), every `intervalMs`, when script checks are on. */
export interface ScriptCheckSpec {
  /** The command and its arguments, run directly (no shell). */
  readonly args: readonly string[];
  readonly intervalMs: number;
  /** How long one run may take before it is killed and the check turns critical; default 30 s. */
  readonly timeoutMs: number;
}

/** A check as registered, decoded and validated: a TTL check or an HTTP check, never both. */
export interface CheckDefinition {
  /** `service:<service id>` unless the request named it (`CheckID`). */
  readonly id: string;
  readonly name: string;
  readonly notes: string;
  /** For a TTL check: how long a pass holds; undefined for an HTTP check. */
  readonly ttlMs: number | undefined;
  /** For an HTTP check: what to request; undefined for a TTL check. */
  readonly http: HttpCheckSpec | undefined;
  /** The initial status the request asked for; a new check without one starts critical. */
  readonly status: CheckStatus | undefined;
  /** Remove the whole service once this check has been critical for this long. */
  readonly deregisterCriticalAfterMs: number | undefined;
  /**
   * A maintenance check (`_node_maintenance`, `_service_maintenance:<id>`), critical while
   * maintenance is on; neither TTL nor HTTP. Set by the server, never decoded from a request.
   */
  readonly maintenance?: true;
  /** For a script check: what to run; undefined otherwise. */
  readonly script?: ScriptCheckSpec;
}

/** The body of `PUT /v1/agent/check/register`: a check of the node, or of a service. */
export interface StandaloneCheckDefinition extends CheckDefinition {
  /** The service the check belongs to (`ServiceID`); undefined for a check of the node. */
  readonly serviceId: string | undefined;
}

/** The body of `PUT /v1/agent/service/register`, decoded and validated. */
export interface ServiceDefinition {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly weights: { readonly passing: number; readonly warning: number };
  /** Consul's anti-entropy flag (`EnableTagOverride`): stored and returned, since nothing here overrides tags. */
  readonly enableTagOverride: boolean;
  readonly checks: readonly CheckDefinition[];
}

/**
 * A request body the server cannot accept; `message` is the text answered with HTTP 400.
 * Code `INVALID_REQUEST`.
 */
export class RequestDecodeError extends TrellisError {
  /** The offending field, as a path such as `Check.TTL` or `Meta["a.b"]`. */
  readonly field: string;

  constructor(field: string, message: string) {
    super('INVALID_REQUEST', message);
    this.field = field;
  }
}

// Check kinds Consul offers beyond TTL and HTTP; named so that a request using one is refused
// clearly instead of registering a service whose health nobody checks.
// `Script` (a shell line) is Consul's pre-1.0 form; `Args` is the one script checks take.
const unsupportedCheckKinds = ['TCP', 'UDP', 'GRPC', 'H2PING', 'Script', 'AliasNode', 'AliasService'];

// Past 2^63 - 1, the largest time.Duration (a float cannot hold that odd number, so the bound
// is 2^63 itself, which Go cannot decode either); a string past it fails in parseGoDuration.
const durationNanosBound = 2 ** 63;

// Consul's defaults and floor for interval checks (checks.MinInterval, the HTTP client timeout).
const minIntervalMs = 1_000;
const defaultHttpTimeoutMs = 10_000;
const defaultScriptTimeoutMs = 30_000;
const httpTokenPattern = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The longest name or ID (of a service, check or node) the server accepts, in UTF-16 code
 * units. Consul sets none, but a name must fit in a route's path again: the HTTP server takes
 * path parameters of up to {@link maxParamLength} characters, room for this limit fully
 * percent-encoded.
 */
export const maxNameLength = 256;

/**
 * The longest path parameter the HTTP server routes (Fastify's `maxParamLength`, 100 by
 * default): room for any name or ID it accepts, and for a check ID derived from a service ID
 * (`service:<ID>:<n>`), with every character percent-encoded as UTF-8 (at most 9 characters
 * for one UTF-16 code unit).
 */
export const maxParamLength = (maxNameLength + 16) * 9;

// Consul's limits on service metadata (structs.ValidateServiceMetadata), so that what the
// embedded server accepts a Consul cluster accepts too.
const metaKeyPattern = /^[a-zA-Z0-9_-]+$/;
const metaMaxPairs = 64;
const metaMaxKeyLength = 128;
const metaMaxValueLength = 512;

/**
 * Decodes and validates the JSON body of a service registration, the way Consul reads it:
 * keys match in any case and with or without underscores (`Name`, `name`, `NAME`,
 * `deregister_critical_service_after`), unknown keys are ignored, and `null` means "not given".
 * Checks (`Check` or `Checks`) are TTL checks (`TTL`) or HTTP checks (`HTTP` with `Interval`,
 * optionally `Timeout`, `Method`, `Header`, `Body`, `TLSSkipVerify`).
 *
 * @throws RequestDecodeError naming the field, for malformed JSON, a wrong type, a missing
 *   `Name`, or a value out of range.
 * @example
 * const def = decodeServiceDefinition('{"Name":"web","Port":8080,"Check":{"TTL":"10s"}}');
 * def.id; // "web"
 * def.checks[0]?.id; // "service:web"
 */
export function decodeServiceDefinition(body: string | undefined): ServiceDefinition {
  const fields = bodyFields(body);

  const name = optionalString(fields, 'Name', '');
  if (name === '') throw new RequestDecodeError('Name', 'Missing service name: Name is required');
  const id = optionalString(fields, 'ID', '') || name;
  const address = optionalString(fields, 'Address', '');
  const port = optionalInteger(fields, 'Port', 'Port', 0, 65535) ?? 0;
  const tags = optionalStringArray(fields, 'Tags');
  const meta = decodeMeta(fields.get('meta'));
  const weights = decodeWeights(fields.get('weights'));
  const enableTagOverride = optionalBoolean(fields, 'EnableTagOverride');
  limitLength('Name', name);
  limitLength('ID', id);

  const checkValues: { value: unknown; path: string }[] = [];
  const check = fields.get('check');
  if (check !== undefined && check !== null) checkValues.push({ value: check, path: 'Check' });
  const checks = fields.get('checks');
  if (checks !== undefined && checks !== null) {
    if (!Array.isArray(checks)) throw decodeError('Checks', 'must be an array of check objects');
    checks.forEach((value: unknown, i) => checkValues.push({ value, path: `Checks[${i}]` }));
  }
  // Consul's naming: one check is "service:<id>", several are "service:<id>:1", ":2", ...
  const decodedChecks = checkValues.map(({ value, path }, i) =>
    decodeCheck(
      fieldsOf(value, path),
      path,
      checkValues.length === 1 ? `service:${id}` : `service:${id}:${i + 1}`,
      `Service '${name}' check`,
    ),
  );
  const seen = new Set<string>();
  for (const [i, c] of decodedChecks.entries()) {
    if (seen.has(c.id)) throw decodeError(checkValues[i]?.path ?? 'Checks', `CheckID "${c.id}" is used twice`);
    seen.add(c.id);
  }

  return { id, name, address, port, tags, meta, weights, enableTagOverride, checks: decodedChecks };
}

/**
 * Decodes and validates the JSON body of `PUT /v1/agent/check/register`, with the same key
 * rules as {@link decodeServiceDefinition}. `Name` is required; the check's id is `ID` (or
 * `CheckID`), else its name. A TTL check needs `TTL`; an HTTP check `HTTP` and `Interval`.
 *
 * @throws RequestDecodeError naming the field, for malformed JSON, a wrong type, a missing
 *   `Name`, a check that is neither TTL nor HTTP, or a value out of range.
 * @example
 * const check = decodeCheckDefinition('{"Name":"disk","HTTP":"http://127.0.0.1:9000/disk","Interval":"10s"}');
 * check.id; // "disk"
 * check.http?.timeoutMs; // 10000
 */
export function decodeCheckDefinition(body: string | undefined): StandaloneCheckDefinition {
  const fields = bodyFields(body);
  const name = optionalString(fields, 'Name', '');
  if (name === '') throw new RequestDecodeError('Name', 'Missing check name: Name is required');
  const id = optionalString(fields, 'ID', '') || optionalString(fields, 'CheckID', '') || name;
  const serviceId = optionalString(fields, 'ServiceID', '');
  limitLength('ServiceID', serviceId);
  return { ...decodeCheck(fields, '', id, name), serviceId: serviceId === '' ? undefined : serviceId };
}

function decodeCheck(
  fields: Map<string, unknown>,
  path: string,
  defaultId: string,
  defaultName: string,
): CheckDefinition {
  const at = (key: string): string => (path === '' ? key : `${path}.${key}`);
  for (const kind of unsupportedCheckKinds) {
    const given = fields.get(normalizeKey(kind));
    if (given !== undefined && given !== null && given !== '') {
      throw decodeError(at(kind), 'is not supported by this server yet; only TTL, HTTP and script (Args) checks are');
    }
  }
  const ttlMs = optionalDuration(fields, at('TTL'), 'TTL');
  const url = optionalString(fields, at('HTTP'), '', 'HTTP');
  const args = fields.get('args') ?? fields.get('scriptargs');
  let http: HttpCheckSpec | undefined;
  let script: ScriptCheckSpec | undefined;
  if (args !== undefined && args !== null) {
    if (ttlMs !== undefined || url !== '') {
      throw decodeError(at('Args'), 'cannot be given with TTL or HTTP: a check is one kind');
    }
    script = decodeScriptCheck(fields, at, args);
  } else if (url !== '') {
    if (ttlMs !== undefined) throw decodeError(at('TTL'), 'cannot be given with HTTP: a check is one or the other');
    http = decodeHttpCheck(fields, at, url);
  } else {
    if (ttlMs === undefined)
      throw decodeError(at('TTL'), 'is required: give TTL for a TTL check, or HTTP and Interval');
    if (ttlMs <= 0) throw decodeError(at('TTL'), 'must be a positive Go duration such as "10s"');
  }

  const status = optionalString(fields, at('Status'), '', 'Status');
  if (status !== '' && !checkStatuses.includes(status)) {
    throw decodeError(at('Status'), `must be one of passing, warning, critical; got "${status}"`);
  }
  const deregisterAfterMs = optionalDuration(
    fields,
    at('DeregisterCriticalServiceAfter'),
    'DeregisterCriticalServiceAfter',
  );
  if (deregisterAfterMs !== undefined && deregisterAfterMs < 0) {
    throw decodeError(at('DeregisterCriticalServiceAfter'), 'must not be negative');
  }
  const givenId = optionalString(fields, at('CheckID'), '', 'CheckID');
  // The derived `service:<ID>` may be longer: routes have room for it (maxParamLength).
  limitLength(path === '' ? 'ID' : at('CheckID'), givenId || (path === '' ? defaultId : ''));
  const id = givenId || defaultId;
  return {
    id,
    name: optionalString(fields, at('Name'), '', 'Name') || defaultName,
    notes: optionalString(fields, at('Notes'), '', 'Notes'),
    ttlMs: http === undefined && script === undefined ? ttlMs : undefined,
    http,
    ...(script === undefined ? {} : { script }),
    status: status === '' ? undefined : (status as CheckStatus),
    // Consul treats a zero timeout as "never deregister".
    deregisterCriticalAfterMs:
      deregisterAfterMs === undefined || deregisterAfterMs === 0 ? undefined : deregisterAfterMs,
  };
}

function decodeScriptCheck(fields: Map<string, unknown>, at: (key: string) => string, args: unknown): ScriptCheckSpec {
  if (!Array.isArray(args) || args.length === 0 || !args.every((a) => typeof a === 'string')) {
    throw decodeError(at('Args'), 'must be a non-empty array of strings: the command and its arguments');
  }
  if (args[0] === '') throw decodeError(at('Args'), 'must start with the command to run');
  const intervalMs = optionalDuration(fields, at('Interval'), 'Interval');
  if (intervalMs === undefined || intervalMs <= 0) {
    throw decodeError(at('Interval'), 'must be a positive Go duration such as "10s" for a script check');
  }
  const timeoutMs = optionalDuration(fields, at('Timeout'), 'Timeout');
  if (timeoutMs !== undefined && timeoutMs < 0) throw decodeError(at('Timeout'), 'must not be negative');
  return {
    args: [...args],
    intervalMs: Math.max(intervalMs, minIntervalMs),
    // Consul's CheckMonitor gives a script 30 s unless the check says otherwise.
    timeoutMs: timeoutMs === undefined || timeoutMs === 0 ? defaultScriptTimeoutMs : timeoutMs,
  };
}

function decodeHttpCheck(fields: Map<string, unknown>, at: (key: string) => string, url: string): HttpCheckSpec {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
    throw decodeError(at('HTTP'), `must be an absolute http:// or https:// URL; got "${url}"`);
  }
  const intervalMs = optionalDuration(fields, at('Interval'), 'Interval');
  if (intervalMs === undefined || intervalMs <= 0) {
    throw decodeError(at('Interval'), 'must be a positive Go duration such as "10s" for an HTTP check');
  }
  const timeoutMs = optionalDuration(fields, at('Timeout'), 'Timeout');
  if (timeoutMs !== undefined && timeoutMs < 0) throw decodeError(at('Timeout'), 'must not be negative');
  const method = optionalString(fields, at('Method'), '', 'Method') || 'GET';
  if (!httpTokenPattern.test(method)) throw decodeError(at('Method'), `is not an HTTP method: "${method}"`);
  const tlsSkipVerify = fields.get(normalizeKey('TLSSkipVerify')) ?? false;
  if (typeof tlsSkipVerify !== 'boolean') throw decodeError(at('TLSSkipVerify'), 'must be true or false');
  const disableRedirects = fields.get(normalizeKey('DisableRedirects')) ?? false;
  if (typeof disableRedirects !== 'boolean') throw decodeError(at('DisableRedirects'), 'must be true or false');
  return {
    url,
    method,
    header: decodeHeader(fields.get(normalizeKey('Header')), at('Header')),
    body: optionalString(fields, at('Body'), '', 'Body'),
    // Consul raises shorter intervals to its floor rather than refusing them.
    intervalMs: Math.max(intervalMs, minIntervalMs),
    timeoutMs: timeoutMs === undefined || timeoutMs === 0 ? defaultHttpTimeoutMs : timeoutMs,
    tlsSkipVerify,
    disableRedirects,
  };
}

// Go's http.Header in JSON: {"Name": ["value", ...]}.
export function decodeHeader(value: unknown, path: string): Readonly<Record<string, readonly string[]>> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw decodeError(path, 'must be a JSON object of string arrays, such as {"Accept": ["text/plain"]}');
  }
  const entries = Object.entries(value);
  for (const [name, values] of entries) {
    const field = `${path}[${JSON.stringify(name)}]`;
    if (!httpTokenPattern.test(name)) throw decodeError(field, 'is not a valid header name');
    if (!Array.isArray(values) || !values.every((v) => typeof v === 'string')) {
      throw decodeError(field, 'must be an array of strings');
    }
    if (values.some((v: string) => /[\r\n\0]/.test(v))) throw decodeError(field, 'must not contain line breaks');
  }
  return Object.fromEntries(entries as [string, string[]][]);
}

export function decodeMeta(
  value: unknown,
  path = 'Meta',
  options: { readonly reservedPrefix?: boolean } = {},
): Readonly<Record<string, string>> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw decodeError(path, 'must be a JSON object of string values');
  }
  const entries = Object.entries(value);
  if (entries.length > metaMaxPairs) {
    throw decodeError(path, `cannot contain more than ${metaMaxPairs} key/value pairs`);
  }
  for (const [key, v] of entries) {
    const field = `${path}[${JSON.stringify(key)}]`;
    if (typeof v !== 'string') throw decodeError(field, 'must be a string');
    if (!metaKeyPattern.test(key)) throw decodeError(field, 'has an invalid key: use letters, digits, "-" and "_"');
    if (key.length > metaMaxKeyLength) throw decodeError(field, `key is longer than ${metaMaxKeyLength} characters`);
    if (v.length > metaMaxValueLength)
      throw decodeError(field, `value is longer than ${metaMaxValueLength} characters`);
    if (options.reservedPrefix !== true && key.startsWith('consul-')) {
      throw decodeError(field, 'uses the reserved prefix "consul-"');
    }
  }
  // fromEntries defines own properties, so a "__proto__" key stays a plain key.
  return Object.fromEntries(entries as [string, string][]);
}

export function decodeWeights(value: unknown, path = 'Weights'): { passing: number; warning: number } {
  if (value === undefined || value === null) return { passing: 1, warning: 1 };
  const fields = fieldsOf(value, path);
  const passing = optionalInteger(fields, `${path}.Passing`, 'Passing', 1, 2 ** 31 - 1) ?? 1;
  const warning = optionalInteger(fields, `${path}.Warning`, 'Warning', 0, 2 ** 31 - 1) ?? 1;
  return { passing, warning };
}

// Consul (Go's encoding/json plus its key translation) matches keys case-insensitively and
// accepts snake_case aliases; lower-casing and dropping underscores covers both.
export function normalizeKey(key: string): string {
  return key.toLowerCase().replaceAll('_', '');
}

// The request body as the fields of one JSON object.
export function bodyFields(body: string | undefined): Map<string, unknown> {
  if (body === undefined || body.trim() === '') {
    throw new RequestDecodeError(
      'body',
      'Request decode failed: the body is empty; expected a JSON object with a Name',
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new RequestDecodeError('body', `Request decode failed: the body is not valid JSON (${reason})`);
  }
  return fieldsOf(json, 'body');
}

export function fieldsOf(value: unknown, path: string): Map<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw decodeError(path, 'must be a JSON object');
  }
  // Later keys win, as in Go, when one key is given in two spellings.
  return new Map(Object.entries(value).map(([key, v]) => [normalizeKey(key), v]));
}

export function optionalString(fields: Map<string, unknown>, path: string, fallback: string, key = path): string {
  const value = fields.get(normalizeKey(key));
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'string') throw decodeError(path, 'must be a string');
  return value;
}

export function optionalInteger(
  fields: Map<string, unknown>,
  path: string,
  key: string,
  min: number,
  max: number,
): number | undefined {
  const value = fields.get(normalizeKey(key));
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw decodeError(path, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

export function optionalStringArray(fields: Map<string, unknown>, path: string, key = path): string[] {
  const value = fields.get(normalizeKey(key));
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw decodeError(path, 'must be an array of strings');
  }
  return [...value];
}

// A Go duration string, or a number of nanoseconds (how Go encodes a time.Duration in JSON).
function optionalDuration(fields: Map<string, unknown>, path: string, key: string): number | undefined {
  const value = fields.get(normalizeKey(key));
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'number' && Number.isInteger(value)) {
    // Go's time.Duration is an int64 of nanoseconds: past it Consul cannot decode the number,
    // and Go clients could not read the duration back from agent/checks.
    if (Math.abs(value) >= durationNanosBound) {
      throw decodeError(path, "must be at most 2^63-1 nanoseconds, Go's longest duration (about 292 years)");
    }
    return value / 1e6;
  }
  if (typeof value !== 'string') throw decodeError(path, 'must be a Go duration string such as "10s"');
  try {
    return parseGoDuration(value);
  } catch {
    throw decodeError(path, `must be a Go duration such as "10s", "1m30s" or "500ms"; got "${value}"`);
  }
}

export function optionalBoolean(fields: Map<string, unknown>, path: string, key = path): boolean {
  const value = fields.get(normalizeKey(key));
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') throw decodeError(path, 'must be true or false');
  return value;
}

/**
 * Refuses a name or ID longer than {@link maxNameLength}, so that whatever registers can be
 * named again in a route's path (a heartbeat, a deregistration).
 * @throws RequestDecodeError naming the field and the limit.
 */
export function limitLength(field: string, value: string): void {
  if (value.length > maxNameLength) {
    throw decodeError(field, `is longer than ${maxNameLength} characters, the limit for names and IDs`);
  }
}

export function decodeError(field: string, problem: string): RequestDecodeError {
  return new RequestDecodeError(field, `Request decode failed: ${field} ${problem}`);
}

// Equality of definitions, so that registering the same thing again is a no-op that moves no index.

/** Whether two service definitions register the same service (their checks aside). */
export function sameService(a: ServiceDefinition, b: ServiceDefinition): boolean {
  return (
    a.name === b.name &&
    a.address === b.address &&
    a.port === b.port &&
    sameList(a.tags, b.tags) &&
    sameMeta(a.meta, b.meta) &&
    a.weights.passing === b.weights.passing &&
    a.weights.warning === b.weights.warning &&
    a.enableTagOverride === b.enableTagOverride
  );
}

/** Whether two check definitions describe the same check (its initial status aside). */
export function sameCheck(a: CheckDefinition, b: CheckDefinition): boolean {
  return (
    a.name === b.name &&
    a.notes === b.notes &&
    a.ttlMs === b.ttlMs &&
    a.deregisterCriticalAfterMs === b.deregisterCriticalAfterMs &&
    sameHttp(a.http, b.http) &&
    JSON.stringify(a.script) === JSON.stringify(b.script)
  );
}

function sameHttp(a: HttpCheckSpec | undefined, b: HttpCheckSpec | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return (
    a.url === b.url &&
    a.method === b.method &&
    a.body === b.body &&
    a.intervalMs === b.intervalMs &&
    a.timeoutMs === b.timeoutMs &&
    a.tlsSkipVerify === b.tlsSkipVerify &&
    (a.disableRedirects ?? false) === (b.disableRedirects ?? false) &&
    JSON.stringify(a.header) === JSON.stringify(b.header)
  );
}

/** Whether two lists hold the same strings in the same order. */
export function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function sameMeta(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}
