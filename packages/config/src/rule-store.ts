import { ConfigError } from '@trellis/core';
import { maxTxnOps, type ConsulKv, type KvEntry, type KvOp } from './consul-kv.js';
import { KvTxnError, RulesConflictError } from './errors.js';
import {
  checkMeta,
  decodeEnvelope,
  historyVersion,
  rulesDryRunKey,
  rulesHistoryKey,
  rulesKey,
  validated,
  type RulesEnvelope,
  type RulesMeta,
  type RulesValidator,
} from './rules-envelope.js';

/** Options of {@link RuleStore}. */
export interface RuleStoreOptions<T> {
  readonly kv: ConsulKv;
  /** Checks a rules document, throwing a ConfigError that names the field (`parseRules`). */
  readonly validate: RulesValidator<T>;
  /** Wall-clock time in epoch milliseconds, for the envelopes' `time`; default `Date.now`. */
  readonly now?: () => number;
  /** Versions kept in the history, the newest; default 100. */
  readonly keep?: number;
}

/** One difference between two rules documents. */
export interface RuleChange {
  /** Where, as `client.routing.default.split[1].weight`; empty for the document as a whole. */
  readonly path: string;
  /** The value before; undefined when the field was not there. */
  readonly before: unknown;
  /** The value after; undefined when the field goes. */
  readonly after: unknown;
}

// Differences listed at most, so that a diff of two huge documents stays readable and bounded.
const maxChanges = 1_000;

/**
 * Reads and writes the rules of services in the KV, versioned: each write is a new version with
 * author, reason and time, written with its history entry in one `/v1/txn` transaction that
 * also checks that the live rules did not move since they were read (so two writers never both
 * win) and drops the history beyond `keep`. The CLI and tests write through it; instances read
 * with {@link RulesWatch}.
 *
 * Keys: `trellis/rules/<service>` (live), `trellis/rules-history/<service>/<10-digit version>`,
 * `trellis/rules-dry-run/<service>`.
 *
 * @throws ConfigError from the constructor for a `keep` that is not a positive integer.
 * @example
 * const store = new RuleStore({ kv: new ConsulKv(), validate: (rules) => rules as { limits?: unknown } });
 * const v = await store.set('forum', { limits: {} }, { author: 'ana', reason: 'first rules' });
 * await store.rollback('forum', { author: 'ana', reason: 'undo' }); // back to what came before v
 */
export class RuleStore<T> {
  readonly #kv: ConsulKv;
  readonly #validate: RulesValidator<T>;
  readonly #now: () => number;
  readonly #keep: number;

  constructor(options: RuleStoreOptions<T>) {
    const keep = options.keep ?? 100;
    if (!Number.isSafeInteger(keep) || keep < 1 || keep > 10_000) {
      throw new ConfigError('keep', `must be an integer from 1 to 10000, got ${keep}`);
    }
    this.#kv = options.kv;
    this.#validate = options.validate;
    this.#now = options.now ?? Date.now;
    this.#keep = keep;
  }

  /**
   * The live rules of `service`; undefined when none are set.
   * @throws ConfigError when the stored document is invalid (naming the field).
   */
  async get(service: string): Promise<RulesEnvelope<T> | undefined> {
    const entry = await this.#kv.get(rulesKey(service));
    return entry === undefined ? undefined : this.#decode(entry);
  }

  /** The dry-run candidate of `service`; undefined when none is set. */
  async getDryRun(service: string): Promise<RulesEnvelope<T> | undefined> {
    const entry = await this.#kv.get(rulesDryRunKey(service));
    return entry === undefined ? undefined : this.#decode(entry);
  }

  /**
   * Writes `rules` as the next version of the live rules of `service`.
   * @returns the envelope written.
   * @throws ConfigError (before anything is written) for invalid rules, author or reason;
   *   RulesConflictError when another writer changed the rules meanwhile (nothing written);
   *   RegistryUnavailableError.
   */
  async set(service: string, rules: unknown, meta: RulesMeta): Promise<RulesEnvelope<T>> {
    const checked = validated(this.#validate, rules);
    return this.#write(service, checked, checkMeta(meta));
  }

  /**
   * The versions of `service` kept in the history, newest first, at most `limit` (default
   * all that are kept).
   * @throws ConfigError when a kept version is invalid now.
   */
  async history(service: string, options: { readonly limit?: number } = {}): Promise<RulesEnvelope<T>[]> {
    const limit = options.limit ?? this.#keep;
    const entries = await this.#kv.list(rulesHistoryKey(service));
    return entries
      .filter((entry) => historyVersion(entry.key) !== undefined)
      .sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0))
      .slice(0, Math.max(0, limit))
      .map((entry) => this.#decode(entry));
  }

  /**
   * Writes the rules of an earlier version again, as a new version: the one before the live
   * version, or `toVersion`.
   * @returns the new envelope.
   * @throws ConfigError when there is no such version kept (`toVersion`), or when the old rules
   *   do not pass the validator now; RulesConflictError as {@link set}.
   */
  async rollback(
    service: string,
    meta: RulesMeta,
    options: { readonly toVersion?: number } = {},
  ): Promise<RulesEnvelope<T>> {
    checkMeta(meta);
    const live = await this.#kv.get(rulesKey(service));
    const liveVersion = live === undefined ? undefined : versionOf(live.value);
    const kept = (await this.#historyVersions(service)).reverse();
    const target = options.toVersion ?? kept.find((version) => liveVersion === undefined || version < liveVersion);
    if (target === undefined || !kept.includes(target)) {
      const range = kept.length === 0 ? 'none is kept' : `kept: ${kept.at(-1)} to ${kept[0]}`;
      throw new ConfigError(
        'toVersion',
        target === undefined
          ? `service "${service}" has no version before ${liveVersion ?? 'the live one'} to roll back to (${range})`
          : `version ${target} of service "${service}" is not in the history (${range})`,
      );
    }
    const entry = await this.#kv.get(rulesHistoryKey(service, target));
    if (entry === undefined) throw new RulesConflictError(service, `version ${target} was dropped meanwhile`);
    return this.#write(service, this.#decode(entry).rules, meta, live ?? null);
  }

  /**
   * What would change if `candidate` were set now: one {@link RuleChange} per field that
   * differs, in path order.
   * @throws ConfigError for an invalid candidate.
   */
  async diff(service: string, candidate: unknown): Promise<RuleChange[]> {
    const checked = validated(this.#validate, candidate);
    const live = await this.get(service);
    const changes: RuleChange[] = [];
    diffInto(changes, '', live?.rules, checked);
    return changes;
  }

  /**
   * Sets `rules` as the dry-run candidate of `service`: instances evaluate it beside the live
   * rules without applying it. Its version is the one it would get if set now.
   * @throws ConfigError for invalid rules, author or reason.
   */
  async setDryRun(service: string, rules: unknown, meta: RulesMeta): Promise<RulesEnvelope<T>> {
    const checked = validated(this.#validate, rules);
    const { author, reason } = checkMeta(meta);
    const live = await this.#kv.get(rulesKey(service));
    const version = (await this.#latestVersion(service, live)) + 1;
    const envelope: RulesEnvelope<T> = { version, author, reason, time: this.#time(), rules: checked };
    await this.#kv.put(rulesDryRunKey(service), JSON.stringify(envelope));
    return envelope;
  }

  /** Ends the dry run of `service` (no-op when there is none). */
  async clearDryRun(service: string): Promise<void> {
    await this.#kv.delete(rulesDryRunKey(service));
  }

  // One transaction: the live key has not moved since read (or still does not exist), the new
  // version is not in the history yet, set both, drop the oldest beyond `keep`.
  async #write(service: string, rules: T, meta: RulesMeta, read?: KvEntry | null): Promise<RulesEnvelope<T>> {
    const key = rulesKey(service);
    const live = read === undefined ? await this.#kv.get(key) : (read ?? undefined);
    const kept = await this.#historyVersions(service);
    const version = Math.max(live === undefined ? 0 : (versionOf(live.value) ?? 0), kept.at(-1) ?? 0) + 1;
    const envelope: RulesEnvelope<T> = { version, ...meta, time: this.#time(), rules };
    const text = JSON.stringify(envelope);
    const drop = kept.slice(0, Math.max(0, kept.length + 1 - this.#keep));
    const ops: KvOp[] = [
      live === undefined ? { verb: 'check-not-exists', key } : { verb: 'check-index', key, index: live.modifyIndex },
      { verb: 'set', key, value: text },
      { verb: 'cas', key: rulesHistoryKey(service, version), value: text, index: 0 },
      // What does not fit in this transaction goes with the next write.
      ...drop.slice(0, maxTxnOps - 3).map((old): KvOp => ({ verb: 'delete', key: rulesHistoryKey(service, old) })),
    ];
    try {
      await this.#kv.txn(ops);
    } catch (error) {
      if (KvTxnError.is(error) && error.errors.some((e) => e.opIndex === 0 || e.opIndex === 2)) {
        throw new RulesConflictError(
          service,
          `version ${version} was to be written over ${live === undefined ? 'no rules' : `version ${versionOf(live.value) ?? '?'}`}, and the live rules moved meanwhile; read them again`,
        );
      }
      throw error;
    }
    return envelope;
  }

  async #historyVersions(service: string): Promise<number[]> {
    const keys = await this.#kv.keys(rulesHistoryKey(service));
    return keys
      .map(historyVersion)
      .filter((v): v is number => v !== undefined)
      .sort((a, b) => a - b);
  }

  async #latestVersion(service: string, live: KvEntry | undefined): Promise<number> {
    const kept = await this.#historyVersions(service);
    return Math.max(live === undefined ? 0 : (versionOf(live.value) ?? 0), kept.at(-1) ?? 0);
  }

  #decode(entry: KvEntry): RulesEnvelope<T> {
    const decoded = decodeEnvelope(entry.key, entry.value, this.#validate);
    if ('refusal' in decoded) {
      const { field, problem, version } = decoded.refusal;
      throw new ConfigError(
        field,
        `${problem} (in ${entry.key}${version === undefined ? '' : `, version ${version}`})`,
      );
    }
    return decoded.envelope;
  }

  #time(): string {
    return new Date(this.#now()).toISOString();
  }
}

/** The `version` of a stored envelope, read leniently (a broken document still has one). */
function versionOf(text: string): number | undefined {
  try {
    const version = (JSON.parse(text) as { version?: unknown } | null)?.version;
    return typeof version === 'number' && Number.isSafeInteger(version) && version > 0 ? version : undefined;
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function diffInto(out: RuleChange[], path: string, before: unknown, after: unknown): void {
  if (out.length >= maxChanges || JSON.stringify(before) === JSON.stringify(after)) return;
  const objects = (isObject(before) || before === undefined) && (isObject(after) || after === undefined);
  if (objects && (before !== undefined || after !== undefined)) {
    const a = before ?? {};
    const b = after ?? {};
    for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      diffInto(out, path === '' ? key : `${path}.${key}`, a[key], b[key]);
    }
    return;
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    for (let i = 0; i < Math.max(before.length, after.length); i++) diffInto(out, `${path}[${i}]`, before[i], after[i]);
    return;
  }
  out.push({ path, before, after });
}
