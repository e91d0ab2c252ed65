import { TrellisError } from '@trellis/core';
import { z } from 'zod';
import { parseGoDuration } from '../http/go-duration.js';

/** What happens to a session's locks when it ends: keys released (default) or deleted. */
export type SessionBehavior = 'release' | 'delete';

/** A check of a service that a session is tied to (`ServiceChecks`). */
export interface ServiceCheckRef {
  readonly id: string;
  readonly namespace: string;
}

/** The body of `PUT /v1/session/create`, decoded, with Consul's defaults filled in. */
export interface SessionDefinition {
  readonly name: string;
  /** The node the session belongs to; default the server's own. */
  readonly node: string;
  /** In milliseconds; default 15 s. Used up to {@link maxLockDelayMs}. */
  readonly lockDelayMs: number;
  readonly behavior: SessionBehavior;
  /** As given (`"30s"`), or "" for none. */
  readonly ttl: string;
  /** The TTL in milliseconds; 0 for none. */
  readonly ttlMs: number;
  /** Checks of the node; `null` when the body said so. Default `["serfHealth"]`. */
  readonly nodeChecks: readonly string[] | null;
  readonly serviceChecks: readonly ServiceCheckRef[] | null;
  /** Consul's field before 1.7 (`Checks`), kept and answered as given. */
  readonly checks: readonly string[];
}

/**
 * A session request the server refuses; `field` names what is wrong, `statusCode` the answer.
 * Code `INVALID_SESSION_REQUEST`.
 */
export class SessionRequestError extends TrellisError {
  readonly field: string;
  readonly statusCode: 400 | 404 | 429;

  constructor(field: string, message: string, statusCode: 400 | 404 | 429 = 400) {
    super('INVALID_SESSION_REQUEST', message);
    this.field = field;
    this.statusCode = statusCode;
  }
}

/** Consul's bounds of a session TTL: 10 s (`session_ttl_min`) to 24 h. */
export const minSessionTtlMs = 10_000;
export const maxSessionTtlMs = 24 * 3600_000;
/** Consul's default lock delay, and the most it applies (`structs.MaxLockDelay`). */
export const defaultLockDelayMs = 15_000;
export const maxLockDelayMs = 60_000;
/** Bounds of this server (Consul has none): a session name, and the checks one session ties to. */
export const maxSessionNameLength = 256;
export const maxSessionChecks = 64;

// Consul reads a LockDelay under this many nanoseconds as seconds: users write 15 meaning 15 s.
const lockDelaySecondsBelow = 1000;
const maxNanos = 2 ** 63 - 1;

// Go's JSON decoder matches field names in any case; these are the names Consul reports.
const fieldNames: Readonly<Record<string, string>> = {
  name: 'Name',
  node: 'Node',
  lockdelay: 'LockDelay',
  behavior: 'Behavior',
  ttl: 'TTL',
  nodechecks: 'NodeChecks',
  servicechecks: 'ServiceChecks',
  checks: 'Checks',
};

const lowerKeys = (value: unknown): unknown =>
  typeof value === 'object' && value !== null && !Array.isArray(value)
    ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k.toLowerCase(), v]))
    : value;

const stringList = z.array(z.string().max(maxSessionNameLength)).max(maxSessionChecks).nullable();

const bodySchema = z.preprocess(
  lowerKeys,
  z.object({
    name: z.string().max(maxSessionNameLength).nullish(),
    node: z.string().max(maxSessionNameLength).nullish(),
    lockdelay: z.union([z.string(), z.number()]).nullish(),
    behavior: z.string().nullish(),
    ttl: z.string().max(64).nullish(),
    nodechecks: stringList.optional(),
    servicechecks: z
      .array(
        z.preprocess(
          lowerKeys,
          z.object({ id: z.string().max(maxSessionNameLength), namespace: z.string().max(64).nullish() }),
        ),
      )
      .max(maxSessionChecks)
      .nullable()
      .optional(),
    checks: stringList.optional(),
  }),
);

/**
 * Decodes the body of `PUT /v1/session/create` as Consul does: field names in any case,
 * unknown fields ignored, an empty body for all the defaults (this node, tied to `serfHealth`,
 * lock delay 15 s, behavior `release`, no TTL). `LockDelay` is a Go duration (`"15s"`) or
 * nanoseconds, a number under 1000 meaning seconds. `"Checks": []` or `"NodeChecks": []` ties
 * the session to no check. TTL must be 0 or from 10 s to 24 h.
 *
 * @throws SessionRequestError (400) naming the field, with Consul's text where it has one.
 * @example
 * decodeSessionDefinition('{"Name":"lock","TTL":"15s","Behavior":"delete"}', 'node-1');
 * // { name: 'lock', node: 'node-1', ttlMs: 15000, behavior: 'delete', nodeChecks: ['serfHealth'], ... }
 */
export function decodeSessionDefinition(body: string | undefined, defaultNode: string): SessionDefinition {
  let raw: unknown = {};
  if (body !== undefined && body.trim() !== '') {
    try {
      raw = JSON.parse(body);
    } catch (error) {
      throw new SessionRequestError('body', `Request decode failed: ${(error as Error).message}`);
    }
  }
  const parsed = bodySchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const [top, ...rest] = issue?.path ?? [];
    const field = [fieldNames[String(top)] ?? String(top ?? 'body'), ...rest.map(String)].join('.');
    throw new SessionRequestError(field, `Request decode failed: ${field}: ${issue?.message ?? 'invalid'}`);
  }
  const fields = parsed.data;

  const node = fields.node ?? defaultNode;
  if (node === '') throw new SessionRequestError('Node', 'Must provide Node');
  const behavior = fields.behavior ?? '';
  if (behavior !== '' && behavior !== 'release' && behavior !== 'delete') {
    throw new SessionRequestError('Behavior', `Invalid Behavior setting '${behavior}'`);
  }
  const ttl = fields.ttl ?? '';
  const ttlMs = decodeTtl(ttl);

  // Consul's defaults and its fix-up for clients from before 1.7, which send Checks: a body
  // without Checks keeps NodeChecks (default serfHealth), an empty Checks empties NodeChecks.
  let nodeChecks: readonly string[] | null = fields.nodechecks === undefined ? ['serfHealth'] : fields.nodechecks;
  let checks: readonly string[] | null = fields.checks === undefined ? ['serfHealth'] : fields.checks;
  if (checks === null || checks.length === 0) {
    nodeChecks = [];
    checks = [];
  } else if (checks.length === 1 && checks[0] === 'serfHealth') {
    checks = [];
  } else if (nodeChecks === null || nodeChecks.length === 0) {
    checks = [];
  }
  const serviceChecks =
    fields.servicechecks === undefined || fields.servicechecks === null
      ? null
      : fields.servicechecks.map((check) => ({ id: check.id, namespace: check.namespace ?? '' }));
  if ((nodeChecks?.length ?? 0) + (serviceChecks?.length ?? 0) + checks.length > maxSessionChecks) {
    throw new SessionRequestError('NodeChecks', `Too many checks: a session is tied to ${maxSessionChecks} at most`);
  }

  return {
    name: fields.name ?? '',
    node,
    lockDelayMs: decodeLockDelay(fields.lockdelay),
    behavior: behavior === 'delete' ? 'delete' : 'release',
    ttl,
    ttlMs,
    nodeChecks,
    serviceChecks,
    checks,
  };
}

/** Every check ID a session is tied to: NodeChecks, ServiceChecks and Checks, as Consul's CheckIDs(). */
export function tiedCheckIds(def: Pick<SessionDefinition, 'nodeChecks' | 'serviceChecks' | 'checks'>): string[] {
  return [...(def.nodeChecks ?? []), ...(def.serviceChecks ?? []).map((check) => check.id), ...def.checks];
}

function decodeTtl(ttl: string): number {
  if (ttl === '') return 0;
  let ms: number;
  try {
    ms = parseGoDuration(ttl);
  } catch (error) {
    throw new SessionRequestError('TTL', `Session TTL '${ttl}' invalid: ${(error as Error).message}`);
  }
  if (ms !== 0 && (ms < minSessionTtlMs || ms > maxSessionTtlMs)) {
    // Consul prints the TTL in nanoseconds here.
    throw new SessionRequestError(
      'TTL',
      `Invalid Session TTL '${Math.round(ms * 1e6)}', must be between [10s=24h0m0s]`,
    );
  }
  return ms;
}

function decodeLockDelay(value: string | number | null | undefined): number {
  if (value === undefined || value === null) return defaultLockDelayMs;
  let nanos: number;
  if (typeof value === 'string') {
    try {
      nanos = parseGoDuration(value) * 1e6;
    } catch (error) {
      throw new SessionRequestError('LockDelay', `Request decode failed: LockDelay: ${(error as Error).message}`);
    }
  } else {
    if (!Number.isFinite(value) || Math.abs(value) > maxNanos) {
      throw new SessionRequestError('LockDelay', 'Request decode failed: LockDelay: out of range');
    }
    nanos = Math.trunc(value);
  }
  if (nanos < lockDelaySecondsBelow) nanos *= 1e9;
  return nanos / 1e6;
}
