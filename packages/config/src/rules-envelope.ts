import { z } from 'zod';
import { ConfigError, isServiceName } from '@trellis/core';

/**
 * One version of a service's rules as the KV holds it (`trellis/rules/<service>`, its history
 * and its dry run): the rules, with who wrote them, why and when.
 */
export interface RulesEnvelope<T> {
  /** 1 for the first version written, then one more for each. */
  readonly version: number;
  readonly author: string;
  readonly reason: string;
  /** When it was written, as an ISO 8601 date (`2026-12-02T04:30:00.000Z`). */
  readonly time: string;
  readonly rules: T;
}

/** Who writes a version and why; both required, as a change log needs them. */
export interface RulesMeta {
  /** At most 200 characters, e.g. `ana@laptop`. */
  readonly author: string;
  /** At most 1000 characters, e.g. `canary 10%`. */
  readonly reason: string;
}

/** A document that was refused: what is wrong and where. */
export interface RulesRefusal {
  /** The version the document says it is, when it says one. */
  readonly version: number | undefined;
  /**
   * The field at fault: a path in the rules (`client.retry.maxAttempts`, as the validator names
   * it), a field of the envelope (`version`, `author`, ...), or the key itself when the value
   * is not a JSON object.
   */
  readonly field: string;
  readonly problem: string;
}

/** Validates a rules document, throwing a ConfigError that names the field (as `parseRules`). */
export type RulesValidator<T> = (rules: unknown) => T;

const maxAuthor = 200;
const maxReason = 1000;

const envelopeSchema = z
  .object({
    version: z.number().int().min(1).max(9_999_999_999),
    author: z.string().min(1).max(maxAuthor),
    reason: z.string().min(1).max(maxReason),
    time: z.iso.datetime(),
    rules: z.unknown(),
  })
  .strict();

/** The KV key of the live rules of `service`. */
export function rulesKey(service: string): string {
  return `trellis/rules/${checkService(service)}`;
}

/** The KV key of version `version` of the rules of `service`, or the prefix of them all. */
export function rulesHistoryKey(service: string, version?: number): string {
  const prefix = `trellis/rules-history/${checkService(service)}/`;
  return version === undefined ? prefix : `${prefix}${String(version).padStart(10, '0')}`;
}

/** The KV key of the dry-run candidate of `service`. */
export function rulesDryRunKey(service: string): string {
  return `trellis/rules-dry-run/${checkService(service)}`;
}

/** The version a history key names; undefined for a key of another shape. */
export function historyVersion(key: string): number | undefined {
  const match = /\/(\d{10})$/.exec(key);
  return match === null ? undefined : Number(match[1]);
}

/** `validate(rules)`, with whatever else it throws turned into a ConfigError on `rules`. */
export function validated<T>(validate: RulesValidator<T>, rules: unknown): T {
  try {
    return validate(rules);
  } catch (error) {
    if (ConfigError.is(error)) throw error;
    throw new ConfigError('rules', error instanceof Error ? error.message : String(error));
  }
}

/** Checks the author and reason of a write. @throws ConfigError naming the one at fault. */
export function checkMeta(meta: RulesMeta): RulesMeta {
  const { author, reason } = meta;
  if (typeof author !== 'string' || author.trim() === '' || author.length > maxAuthor) {
    throw new ConfigError('author', `must be a non-empty string of at most ${maxAuthor} characters`);
  }
  if (typeof reason !== 'string' || reason.trim() === '' || reason.length > maxReason) {
    throw new ConfigError('reason', `must be a non-empty string of at most ${maxReason} characters`);
  }
  return { author, reason };
}

/**
 * Reads a stored envelope: JSON, the envelope's fields, then the rules through `validate`.
 * @returns the envelope, or the refusal naming what is wrong.
 */
export function decodeEnvelope<T>(
  key: string,
  text: string,
  validate: RulesValidator<T>,
): { readonly envelope: RulesEnvelope<T> } | { readonly refusal: RulesRefusal } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { refusal: { version: undefined, field: key, problem: `is not JSON: ${(error as Error).message}` } };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { refusal: { version: undefined, field: key, problem: 'must be a JSON object (an envelope)' } };
  }
  const said = (json as { version?: unknown }).version;
  const version = typeof said === 'number' && Number.isSafeInteger(said) ? said : undefined;
  const parsed = envelopeSchema.safeParse(json);
  if (!parsed.success) {
    const error = ConfigError.fromIssues(parsed.error.issues, '', key);
    return { refusal: { version, field: error.field, problem: error.problem } };
  }
  try {
    const rules = validated(validate, parsed.data.rules);
    return { envelope: { ...parsed.data, rules } };
  } catch (error) {
    const { field, problem } = error as ConfigError;
    return { refusal: { version, field, problem } };
  }
}

function checkService(service: string): string {
  if (!isServiceName(service)) {
    throw new ConfigError('service', `"${String(service)}" is not a service name (letters, digits, "-", "_", ".")`);
  }
  return service;
}
