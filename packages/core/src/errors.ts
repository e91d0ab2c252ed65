// A symbol from the global registry, so that `TrellisError.is()` recognises errors thrown by
// another copy of this package (two versions installed side by side).
const brand = Symbol.for('@trellis/core.TrellisError');

/** The stable codes of Trellis errors; match on these, never on messages. */
export type ErrorCode =
  | 'NO_INSTANCES'
  | 'CONNECTION_FAILED'
  | 'UPSTREAM_STATUS'
  | 'REGISTRY_UNAVAILABLE'
  | 'REGISTRY_REJECTED'
  // EtcdRegistry without the etcd3 package, its optional peer.
  | 'ETCD_CLIENT_MISSING'
  | 'INVALID_CONFIG'
  | 'CLOSED'
  | 'CIRCUIT_OPEN'
  | 'TIMEOUT'
  | 'RATE_LIMITED'
  | 'BULKHEAD_FULL'
  // @trellis/registry-server: its data directory, and the requests it refuses.
  | 'DATA_DIR_UNUSABLE'
  | 'DATA_CORRUPT'
  | 'INVALID_ACL_INPUT'
  | 'INVALID_ACL_RULES'
  | 'ACL_NOT_FOUND'
  | 'INVALID_REQUEST'
  | 'INVALID_QUERY_PARAM'
  | 'INVALID_BODY_ENCODING'
  | 'INVALID_SESSION_REQUEST'
  | 'INVALID_KV_REQUEST'
  | 'NODE_REGISTRATION_REFUSED'
  // @trellis/config: the registry's KV, and the rules written through it.
  | 'KV_TXN_FAILED'
  | 'KV_TOO_LARGE'
  | 'RULES_CONFLICT';

export interface TrellisErrorOptions {
  /** Whether trying again (maybe elsewhere) can succeed. */
  readonly retryable?: boolean;
  /** The service the failed operation concerned. */
  readonly service?: string;
  /** The instance id the failed operation concerned. */
  readonly instance?: string;
  readonly cause?: unknown;
}

/**
 * The base of every error Trellis throws: a stable `code`, whether a retry can help, and the
 * service or instance concerned.
 *
 * @example
 * try { await users.get('/users/1'); }
 * catch (e) { if (TrellisError.is(e) && e.retryable) scheduleRetry(); else throw e; }
 */
export class TrellisError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly service: string | undefined;
  readonly instance: string | undefined;

  constructor(code: ErrorCode, message: string, options: TrellisErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.service = options.service;
    this.instance = options.instance;
    Object.defineProperty(this, brand, { value: true });
  }

  /** True for any Trellis error, from this copy of the package or another. */
  static is(error: unknown): error is TrellisError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[brand] === true;
  }

  /** True for a Trellis error with the given code. */
  static hasCode(error: unknown, code: ErrorCode): error is TrellisError {
    return TrellisError.is(error) && error.code === code;
  }
}

/** No instance of the service is registered and passing its health checks. */
export class NoInstancesError extends TrellisError {
  constructor(service: string, detail = 'none is registered and passing its health checks') {
    super('NO_INSTANCES', `no instance of service "${service}" to call: ${detail}`, { service, retryable: false });
  }

  static override is(error: unknown): error is NoInstancesError {
    return TrellisError.hasCode(error, 'NO_INSTANCES');
  }
}

/**
 * The connection to an instance failed. `sent` is false when the request certainly never
 * reached the instance (connection refused), so that even a non-idempotent call can be tried
 * on another instance.
 */
export class ConnectionError extends TrellisError {
  readonly sent: boolean;

  constructor(service: string, instance: string, sent: boolean, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super('CONNECTION_FAILED', `call to service "${service}" at instance "${instance}" failed: ${reason}`, {
      service,
      instance,
      retryable: true,
      cause,
    });
    this.sent = sent;
  }

  static override is(error: unknown): error is ConnectionError {
    return TrellisError.hasCode(error, 'CONNECTION_FAILED');
  }
}

/**
 * An instance answered with an HTTP error status. 502, 503 and 504 are retryable: they say the
 * instance or something in front of it could not serve the call, not that the call was wrong.
 */
export class UpstreamStatusError extends TrellisError {
  readonly status: number;
  /** The answer's body, as decoded. */
  readonly body: unknown;

  constructor(service: string, instance: string, status: number, body: unknown) {
    super('UPSTREAM_STATUS', `service "${service}" answered HTTP ${status} from instance "${instance}"`, {
      service,
      instance,
      retryable: status === 502 || status === 503 || status === 504,
    });
    this.status = status;
    this.body = body;
  }

  static override is(error: unknown): error is UpstreamStatusError {
    return TrellisError.hasCode(error, 'UPSTREAM_STATUS');
  }
}

/** The registry could not be reached. Discovery keeps serving the last instances it knew. */
export class RegistryUnavailableError extends TrellisError {
  constructor(registry: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super('REGISTRY_UNAVAILABLE', `registry at ${registry} is unreachable: ${reason}`, { retryable: true, cause });
  }

  static override is(error: unknown): error is RegistryUnavailableError {
    return TrellisError.hasCode(error, 'REGISTRY_UNAVAILABLE');
  }
}

/** The registry answered, but refused the request (bad input, unknown id, no permission). */
export class RegistryRejectedError extends TrellisError {
  /** The registry's HTTP status. */
  readonly status: number;

  constructor(operation: string, status: number, reason: string, options: Omit<TrellisErrorOptions, 'retryable'> = {}) {
    super('REGISTRY_REJECTED', `registry refused ${operation} (HTTP ${status}): ${reason}`, {
      ...options,
      retryable: false,
    });
    this.status = status;
  }

  static override is(error: unknown): error is RegistryRejectedError {
    return TrellisError.hasCode(error, 'REGISTRY_REJECTED');
  }
}

/** A configuration value is missing or wrong; `field` names it. */
export class ConfigError extends TrellisError {
  readonly field: string;
  /** What is wrong with it, e.g. "must be an integer from 0 to 65535, got \"abc\"". */
  readonly problem: string;

  constructor(field: string, problem: string) {
    super('INVALID_CONFIG', `invalid configuration "${field}": ${problem}`, { retryable: false });
    this.field = field;
    this.problem = problem;
  }

  /**
   * The ConfigError for what a schema validator (zod) found wrong, naming the field by its path
   * below `root`: "faults" and [0, "abort", "share"] make "faults[0].abort.share". An unknown
   * key is preferred and named itself, since a typo ("dealy") also makes the real key look
   * missing. `whole` names the value itself when the problem has no path; default `root`.
   *
   * @example
   * const issue = { code: 'too_big', path: [0, 'abort', 'share'], message: 'must be between 0 and 1' };
   * ConfigError.fromIssues([issue], 'faults').field; // "faults[0].abort.share"
   * // with zod: if (!result.success) throw ConfigError.fromIssues(result.error.issues, 'faults');
   */
  static fromIssues(issues: readonly SchemaIssue[], root: string, whole = root): ConfigError {
    const issue = issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0];
    if (issue === undefined) return new ConfigError(whole, 'invalid');
    const path: PropertyKey[] = [...issue.path];
    const unknownKey = issue.code === 'unrecognized_keys' ? issue.keys?.[0] : undefined;
    if (unknownKey !== undefined) path.push(unknownKey);
    let field = root;
    for (const part of path) {
      if (typeof part === 'number') field += `[${part}]`;
      else field += field === '' ? String(part) : `.${String(part)}`;
    }
    return new ConfigError(field === '' ? whole : field, unknownKey === undefined ? issue.message : 'unknown key');
  }

  static override is(error: unknown): error is ConfigError {
    return TrellisError.hasCode(error, 'INVALID_CONFIG');
  }
}

/** One problem found by a schema validator, in the shape of zod's issues. */
export interface SchemaIssue {
  readonly code?: string;
  readonly path: readonly PropertyKey[];
  readonly message: string;
  /** The unknown keys, for an issue of code "unrecognized_keys". */
  readonly keys?: readonly string[];
}

/** The component was closed and cannot serve the operation any more. */
export class ClosedError extends TrellisError {
  constructor(component: string) {
    super('CLOSED', `${component} is closed`, { retryable: false });
  }

  static override is(error: unknown): error is ClosedError {
    return TrellisError.hasCode(error, 'CLOSED');
  }
}
