import { parseGoDuration } from './go-duration.js';

/** The states of a Consul health check. */
export type CheckStatus = 'passing' | 'warning' | 'critical';

const checkStatuses: readonly string[] = ['passing', 'warning', 'critical'];

/** A TTL check as registered with a service, decoded and validated. */
export interface CheckDefinition {
  /** `service:<service id>` unless the request named it (`CheckID`). */
  readonly id: string;
  readonly name: string;
  readonly notes: string;
  readonly ttlMs: number;
  /** The initial status the request asked for; a new check without one starts critical. */
  readonly status: CheckStatus | undefined;
  /** Remove the whole service once this check has been critical for this long. */
  readonly deregisterCriticalAfterMs: number | undefined;
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
  readonly checks: readonly CheckDefinition[];
}

/** A request body the server cannot accept; `message` is the text answered with HTTP 400. */
export class RequestDecodeError extends Error {
  /** The offending field, as a path such as `Check.TTL` or `Meta["a.b"]`. */
  readonly field: string;

  constructor(field: string, message: string) {
    super(message);
    this.name = 'RequestDecodeError';
    this.field = field;
  }
}

// Check kinds Consul offers beyond TTL; named so that a request using one is refused clearly
// instead of registering a service whose health nobody checks.
const unsupportedCheckKinds = ['HTTP', 'TCP', 'UDP', 'GRPC', 'H2PING', 'Args', 'Script', 'AliasNode', 'AliasService'];

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
 * Only TTL checks are accepted (`Check` or `Checks`).
 *
 * @throws RequestDecodeError naming the field, for malformed JSON, a wrong type, a missing
 *   `Name`, or a value out of range.
 * @example
 * const def = decodeServiceDefinition('{"Name":"web","Port":8080,"Check":{"TTL":"10s"}}');
 * def.id; // "web"
 * def.checks[0]?.id; // "service:web"
 */
export function decodeServiceDefinition(body: string | undefined): ServiceDefinition {
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
  const fields = fieldsOf(json, 'body');

  const name = optionalString(fields, 'Name', '');
  if (name === '') throw new RequestDecodeError('Name', 'Missing service name: Name is required');
  const id = optionalString(fields, 'ID', '') || name;
  const address = optionalString(fields, 'Address', '');
  const port = optionalInteger(fields, 'Port', 'Port', 0, 65535) ?? 0;
  const tags = optionalStringArray(fields, 'Tags');
  const meta = decodeMeta(fields.get('meta'));
  const weights = decodeWeights(fields.get('weights'));

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
    decodeCheck(value, path, checkValues.length === 1 ? `service:${id}` : `service:${id}:${i + 1}`, name),
  );
  const seen = new Set<string>();
  for (const [i, c] of decodedChecks.entries()) {
    if (seen.has(c.id)) throw decodeError(checkValues[i]?.path ?? 'Checks', `CheckID "${c.id}" is used twice`);
    seen.add(c.id);
  }

  return { id, name, address, port, tags, meta, weights, checks: decodedChecks };
}

function decodeCheck(value: unknown, path: string, defaultId: string, serviceName: string): CheckDefinition {
  const fields = fieldsOf(value, path);
  for (const kind of unsupportedCheckKinds) {
    const given = fields.get(normalizeKey(kind));
    if (given !== undefined && given !== null && given !== '') {
      throw decodeError(`${path}.${kind}`, 'is not supported by this server yet; only TTL checks are (set TTL)');
    }
  }
  const ttlMs = optionalDuration(fields, `${path}.TTL`, 'TTL');
  if (ttlMs === undefined) throw decodeError(`${path}.TTL`, 'is required: only TTL checks are supported');
  if (ttlMs <= 0) throw decodeError(`${path}.TTL`, 'must be a positive Go duration such as "10s"');

  const status = optionalString(fields, `${path}.Status`, '', 'Status');
  if (status !== '' && !checkStatuses.includes(status)) {
    throw decodeError(`${path}.Status`, `must be one of passing, warning, critical; got "${status}"`);
  }
  const deregisterAfterMs = optionalDuration(
    fields,
    `${path}.DeregisterCriticalServiceAfter`,
    'DeregisterCriticalServiceAfter',
  );
  if (deregisterAfterMs !== undefined && deregisterAfterMs < 0) {
    throw decodeError(`${path}.DeregisterCriticalServiceAfter`, 'must not be negative');
  }
  return {
    id: optionalString(fields, `${path}.CheckID`, '', 'CheckID') || defaultId,
    name: optionalString(fields, `${path}.Name`, '', 'Name') || `Service '${serviceName}' check`,
    notes: optionalString(fields, `${path}.Notes`, '', 'Notes'),
    ttlMs,
    status: status === '' ? undefined : (status as CheckStatus),
    // Consul treats a zero timeout as "never deregister".
    deregisterCriticalAfterMs:
      deregisterAfterMs === undefined || deregisterAfterMs === 0 ? undefined : deregisterAfterMs,
  };
}

function decodeMeta(value: unknown): Readonly<Record<string, string>> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw decodeError('Meta', 'must be a JSON object of string values');
  }
  const entries = Object.entries(value);
  if (entries.length > metaMaxPairs) {
    throw decodeError('Meta', `cannot contain more than ${metaMaxPairs} key/value pairs`);
  }
  for (const [key, v] of entries) {
    const field = `Meta[${JSON.stringify(key)}]`;
    if (typeof v !== 'string') throw decodeError(field, 'must be a string');
    if (!metaKeyPattern.test(key)) throw decodeError(field, 'has an invalid key: use letters, digits, "-" and "_"');
    if (key.length > metaMaxKeyLength) throw decodeError(field, `key is longer than ${metaMaxKeyLength} characters`);
    if (v.length > metaMaxValueLength)
      throw decodeError(field, `value is longer than ${metaMaxValueLength} characters`);
    if (key.startsWith('consul-')) throw decodeError(field, 'uses the reserved prefix "consul-"');
  }
  // fromEntries defines own properties, so a "__proto__" key stays a plain key.
  return Object.fromEntries(entries as [string, string][]);
}

function decodeWeights(value: unknown): { passing: number; warning: number } {
  if (value === undefined || value === null) return { passing: 1, warning: 1 };
  const fields = fieldsOf(value, 'Weights');
  const passing = optionalInteger(fields, 'Weights.Passing', 'Passing', 1, 2 ** 31 - 1) ?? 1;
  const warning = optionalInteger(fields, 'Weights.Warning', 'Warning', 0, 2 ** 31 - 1) ?? 1;
  return { passing, warning };
}

// Consul (Go's encoding/json plus its key translation) matches keys case-insensitively and
// accepts snake_case aliases; lower-casing and dropping underscores covers both.
function normalizeKey(key: string): string {
  return key.toLowerCase().replaceAll('_', '');
}

function fieldsOf(value: unknown, path: string): Map<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw decodeError(path, 'must be a JSON object');
  }
  // Later keys win, as in Go, when one key is given in two spellings.
  return new Map(Object.entries(value).map(([key, v]) => [normalizeKey(key), v]));
}

function optionalString(fields: Map<string, unknown>, path: string, fallback: string, key = path): string {
  const value = fields.get(normalizeKey(key));
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'string') throw decodeError(path, 'must be a string');
  return value;
}

function optionalInteger(
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

function optionalStringArray(fields: Map<string, unknown>, path: string): string[] {
  const value = fields.get(normalizeKey(path));
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
  if (typeof value === 'number' && Number.isInteger(value)) return value / 1e6;
  if (typeof value !== 'string') throw decodeError(path, 'must be a Go duration string such as "10s"');
  try {
    return parseGoDuration(value);
  } catch {
    throw decodeError(path, `must be a Go duration such as "10s", "1m30s" or "500ms"; got "${value}"`);
  }
}

function decodeError(field: string, problem: string): RequestDecodeError {
  return new RequestDecodeError(field, `Request decode failed: ${field} ${problem}`);
}
