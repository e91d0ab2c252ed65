import { ClosedError, Emitter, systemClock, TrellisError, type Clock, type Event } from '@trellis/core';
import { IndexGraveyard } from '../http/index-graveyard.js';

/** Consul's default `kv_max_value_size`: 512 KiB. */
export const kvMaxValueSize = 512 * 1024;

/**
 * A key's flags: Consul's uint64, a number up to 2^53-1 and a bigint above (`consul lock` marks
 * its keys with 0x2ddccbc058a50c18), so that every value round-trips exactly.
 */
export type KvFlags = number | bigint;

/** The largest flags Consul stores: 2^64-1. */
export const maxKvFlags = 2n ** 64n - 1n;

/** One key and its value, with Consul's indexes. Entries are replaced, never changed in place. */
export interface KvEntry {
  readonly key: string;
  /** The bytes as written; shared with the store, so callers must not write to it. */
  readonly value: Buffer;
  /** An opaque unsigned integer the client chose, from 0 to 2^64-1; 0 when not given. */
  readonly flags: KvFlags;
  /** The store index when the key was created (again, after a delete). */
  readonly createIndex: number;
  /** The store index of the last write that changed the entry: the `cas` a client passes. */
  readonly modifyIndex: number;
  /**
   * How many times a session took the lock of this key when it was free: a holder that sees
   * it move knows the lock changed hands in between. A plain write resets it to 0, as in Consul.
   */
  readonly lockIndex: number;
  /** The session holding the key's lock; absent when the key is not locked. */
  readonly session?: string;
}

/** What one write changed: the keys set or deleted, and the store index it moved to. */
export interface KvChange {
  readonly keys: readonly string[];
  readonly index: number;
}

/** Options of {@link KvStore.set}. */
export interface KvSetOptions {
  /** Stored with the value; default 0, also when the key had other flags before. */
  readonly flags?: KvFlags;
  /** Check-and-set: 0 writes only if the key is absent, N only if its ModifyIndex is N. */
  readonly cas?: number;
}

/** Options of {@link KvStore.delete}. */
export interface KvDeleteOptions {
  /** Deletes every key that starts with the given one (every key, for ""). */
  readonly recurse?: boolean;
  /** Check-and-delete: only if the key's ModifyIndex is this; not with `recurse`. */
  readonly cas?: number;
}

/** Options of {@link KvStore}. */
export interface KvStoreOptions {
  /** The largest value in bytes; default {@link kvMaxValueSize}, Consul's. */
  readonly maxValueSize?: number;
  /** Times the reaping of tombstones; default `systemClock`. */
  readonly clock?: Clock;
  /** How long a deleted key's tombstone is kept; default 15 minutes, as Consul's tombstone_ttl. */
  readonly tombstoneTtlMs?: number;
}

/**
 * One operation of a KV transaction, with Consul's verbs (`/v1/txn`, `KV.Verb`). `index` is
 * the ModifyIndex a `cas`, `check-index` or `delete-cas` compares with.
 */
export type KvOp =
  | { readonly verb: 'set'; readonly key: string; readonly value: Uint8Array; readonly flags: KvFlags }
  | {
      readonly verb: 'cas';
      readonly key: string;
      readonly value: Uint8Array;
      readonly flags: KvFlags;
      readonly index: number;
    }
  | {
      readonly verb: 'lock' | 'unlock';
      readonly key: string;
      readonly value: Uint8Array;
      readonly flags: KvFlags;
      readonly session: string;
    }
  | { readonly verb: 'get' | 'get-tree' | 'check-not-exists' | 'delete' | 'delete-tree'; readonly key: string }
  | { readonly verb: 'check-index' | 'delete-cas'; readonly key: string; readonly index: number }
  | { readonly verb: 'check-session'; readonly key: string; readonly session: string };

/** The verbs of {@link KvOp}. */
export type KvVerb = KvOp['verb'];

/** The verbs that change the store (Consul's `isWrite`). */
export const kvWriteVerbs: ReadonlySet<KvVerb> = new Set([
  'set',
  'cas',
  'lock',
  'unlock',
  'delete',
  'delete-tree',
  'delete-cas',
]);

/** One result of a transaction: an entry, with its value for `get` and `get-tree` only (as Consul). */
export interface KvTxnResult {
  readonly entry: KvEntry;
  readonly withValue: boolean;
}

/** One failed operation of a transaction: its position and Consul's text of what failed. */
export interface KvTxnError {
  readonly opIndex: number;
  readonly what: string;
}

/** What {@link KvStore.transaction} did: results when every operation held, errors otherwise. */
export type KvTxnOutcome =
  | { readonly ok: true; readonly results: readonly KvTxnResult[]; readonly index: number }
  | { readonly ok: false; readonly errors: readonly KvTxnError[] };

/** What a transaction may ask of the sessions: whether one exists (a lock needs a live session). */
export interface KvTxnContext {
  readonly sessionExists: (session: string) => boolean;
  /** Run the operations and report their failures, but change nothing even if all hold. */
  readonly dryRun?: boolean;
}

/**
 * A write the store refuses; `field` names what is wrong (`key`, `value`, `flags`, `cas`,
 * `recurse`) and `statusCode` is the HTTP status to answer with (413 for a value too large,
 * 400 otherwise). The message is the text to answer with. Code `INVALID_KV_REQUEST`.
 */
export class KvRequestError extends TrellisError {
  readonly field: string;
  readonly statusCode: 400 | 413;

  constructor(field: string, message: string, statusCode: 400 | 413 = 400) {
    super('INVALID_KV_REQUEST', message);
    this.field = field;
    this.statusCode = statusCode;
  }
}

// The writes of one transaction, staged over the store until they all held: reads see them,
// and nothing is visible to others (or emitted) before the commit.
class Staged {
  readonly changed = new Map<string, KvEntry | null>();
  readonly #entries: ReadonlyMap<string, KvEntry>;

  constructor(
    entries: ReadonlyMap<string, KvEntry>,
    /** The index every change of this transaction gets. */
    readonly index: number,
  ) {
    this.#entries = entries;
  }

  get(key: string): KvEntry | undefined {
    const staged = this.changed.get(key);
    return staged === undefined ? this.#entries.get(key) : (staged ?? undefined);
  }

  list(prefix: string): KvEntry[] {
    const found: KvEntry[] = [];
    for (const entry of this.#entries.values()) {
      if (entry.key.startsWith(prefix) && !this.changed.has(entry.key)) found.push(entry);
    }
    for (const entry of this.changed.values()) if (entry !== null && entry.key.startsWith(prefix)) found.push(entry);
    return found.sort((a, b) => compareUtf8(a.key, b.key));
  }

  // Consul's kvsSetTxn: the session is kept unless the write is a lock or unlock; an entry equal
  // to the stored one (value, flags, session, lock index) is no change and keeps its indexes.
  put(
    key: string,
    value: Uint8Array,
    flags: KvFlags,
    lock?: { readonly session: string | undefined; readonly lockIndex: number },
  ): KvEntry {
    const existing = this.get(key);
    const session = lock === undefined ? existing?.session : lock.session;
    const lockIndex = lock?.lockIndex ?? 0;
    if (
      existing !== undefined &&
      existing.flags === flags &&
      existing.session === session &&
      existing.lockIndex === lockIndex &&
      existing.value.equals(value)
    ) {
      return existing;
    }
    const entry: KvEntry = Object.freeze({
      key,
      // A copy, so that the caller reusing its buffer cannot change what is stored.
      value: Buffer.from(value),
      flags,
      createIndex: existing?.createIndex ?? this.index,
      modifyIndex: this.index,
      lockIndex,
      ...(session === undefined ? {} : { session }),
    });
    this.changed.set(key, entry);
    return entry;
  }

  remove(key: string): void {
    if (this.get(key) !== undefined) this.changed.set(key, null);
  }
}

/**
 * Consul's key/value store, as state only (no HTTP): keys with byte values, flags, the
 * indexes clients use for check-and-set and blocking queries, locks held by sessions, and
 * transactions of several operations that all hold or change nothing.
 *
 * The store index starts at 1, never 0, and moves by one on each write that changes
 * something. As in Consul (state store `kvsSetTxn`), a set that leaves value and flags as
 * they are changes nothing: the key keeps its ModifyIndex, the index stays, and no change is
 * emitted, so watchers are not woken by writers that repeat themselves. Deleting a key that
 * is absent changes nothing either. Sessions share the index ({@link advanceIndex}), as all of
 * Consul's state shares the Raft index, so that a session's destruction and the release of its
 * locks are one index.
 *
 * Deleted keys leave a tombstone holding the index of their deletion (dropped when the key is
 * written again), so that the index of a prefix never goes back when a key under it goes
 * away: a watcher of the prefix sees the deletion as a later index. Tombstones are reaped
 * `tombstoneTtlMs` after the deletion, as Consul's tombstone GC does; the largest index reaped
 * stays as a floor of every prefix index, so that it still never goes back.
 *
 * @example
 * const kv = new KvStore();
 * kv.set('config/web/port', '8080');            // true
 * const { modifyIndex } = kv.get('config/web/port')!;
 * kv.set('config/web/port', '8081', { cas: modifyIndex }); // true, once
 * kv.keys('config/', '/');                      // ['config/web/']
 */
export class KvStore {
  readonly #entries = new Map<string, KvEntry>();
  // Key -> the index at which it was deleted; only for keys absent now.
  readonly #tombstones: IndexGraveyard;
  // Session -> the keys whose lock it holds, so that destroying a session finds them at once.
  readonly #held = new Map<string, Set<string>>();
  readonly #changed = new Emitter<KvChange>();
  readonly #maxValueSize: number;
  #index = 1;
  #closed = false;

  /** Fires after every write that changed something, once the store is consistent. */
  readonly onChange: Event<KvChange> = this.#changed.event;

  /** @throws RangeError for a `maxValueSize` that is not a non-negative integer. */
  constructor(options: KvStoreOptions = {}) {
    const max = options.maxValueSize ?? kvMaxValueSize;
    if (!Number.isSafeInteger(max) || max < 0) throw new RangeError(`maxValueSize must be a non-negative integer`);
    this.#maxValueSize = max;
    this.#tombstones = new IndexGraveyard({
      clock: options.clock ?? systemClock,
      ...(options.tombstoneTtlMs === undefined ? {} : { ttlMs: options.tombstoneTtlMs }),
    });
  }

  /** The largest index of a reaped tombstone (0 before any): no prefix index answers less. */
  get reapedIndex(): number {
    return this.#tombstones.floor;
  }

  /** Tombstones kept now. */
  /** Keys stored now and the bytes of their values, for the metrics; one pass over the keys. */
  get size(): { readonly keys: number; readonly bytes: number } {
    let bytes = 0;
    for (const entry of this.#entries.values()) bytes += entry.value.byteLength;
    return { keys: this.#entries.size, bytes };
  }

  get tombstoneCount(): number {
    return this.#tombstones.size;
  }

  /** The store index: at least 1, and larger after every change. */
  get index(): number {
    return this.#index;
  }

  /** The largest value {@link set} accepts, in bytes. */
  get maxValueSize(): number {
    return this.#maxValueSize;
  }

  /** The entry of `key`, or undefined. */
  get(key: string): KvEntry | undefined {
    return this.#entries.get(key);
  }

  /** The entries whose key starts with `prefix` (all for ""), in Consul's order: by UTF-8 bytes. */
  list(prefix: string): KvEntry[] {
    const found: KvEntry[] = [];
    for (const entry of this.#entries.values()) if (entry.key.startsWith(prefix)) found.push(entry);
    return found.sort((a, b) => compareUtf8(a.key, b.key));
  }

  /**
   * The keys under `prefix`, as Consul's `?keys&separator=` lists them: a key with
   * `separator` after the prefix is cut just after the first one and listed once, like a
   * directory; the others are listed whole. No separator (or "") lists every key.
   * @example
   * // keys a/b, a/c/d, a/c/e, a/f/
   * kv.keys('a/', '/'); // ['a/b', 'a/c/', 'a/f/']
   */
  keys(prefix: string, separator = ''): string[] {
    const keys: string[] = [];
    for (const { key } of this.list(prefix)) {
      const at = separator === '' ? -1 : key.indexOf(separator, prefix.length);
      const listed = at < 0 ? key : key.slice(0, at + separator.length);
      // Sorted keys that share a directory are adjacent, so one look back removes duplicates.
      if (keys[keys.length - 1] !== listed) keys.push(listed);
    }
    return keys;
  }

  /**
   * The index a read of one key answers with: its ModifyIndex, or the store index when it is
   * absent (as Consul does, so that a read of a missing key never answers 0).
   */
  keyIndex(key: string): number {
    return this.#entries.get(key)?.modifyIndex ?? this.#index;
  }

  /**
   * The index a read of a prefix (a list, or its keys) answers with, as Consul computes it:
   * the largest ModifyIndex or deletion index under the prefix, or the store index when there
   * has never been anything under it, or the prefix is "".
   */
  prefixIndex(prefix: string): number {
    if (prefix === '') return this.#index;
    let max = 0;
    for (const entry of this.#entries.values()) {
      if (entry.modifyIndex > max && entry.key.startsWith(prefix)) max = entry.modifyIndex;
    }
    for (const [key, index] of this.#tombstones.entries()) if (index > max && key.startsWith(prefix)) max = index;
    // A tombstone under the prefix may have been reaped: its index is at most the floor.
    return max === 0 ? this.#index : Math.max(max, this.#tombstones.floor);
  }

  /**
   * Writes `value` (a string is stored as UTF-8) under `key`. A lock on the key is kept.
   * @returns false when `cas` is given and does not hold (0: the key exists; N: the key is
   *   absent or its ModifyIndex is not N); true otherwise, also when nothing had to change.
   * @throws KvRequestError for an empty key, flags or cas that are not integers from 0 to
   *   2^53-1, or a value larger than {@link maxValueSize} (statusCode 413); nothing changes.
   * @throws ClosedError after {@link close}.
   */
  set(key: string, value: Uint8Array | string, options: KvSetOptions = {}): boolean {
    this.#assertOpen();
    if (key === '') throw new KvRequestError('key', 'Missing key name');
    const flags = checkedFlags(options.flags ?? 0);
    if (options.cas !== undefined) checkUint('cas', options.cas);
    const bytes = this.#checkedValue(value);
    return this.#one(
      options.cas === undefined
        ? { verb: 'set', key, value: bytes, flags }
        : { verb: 'cas', key, value: bytes, flags, index: options.cas },
    );
  }

  /**
   * Takes the lock of `key` for `session` and writes `value` and `flags` (`?acquire=`), as
   * Consul's `kvsLockTxn`: the key is created if absent; its LockIndex moves when the lock was
   * free; a session that holds it already just writes.
   * @returns false when another session holds the lock.
   * @throws KvRequestError as {@link set} does, and for a session that `exists` says is not live
   *   (`invalid session`, field `acquire`); ClosedError after {@link close}.
   */
  lock(
    key: string,
    value: Uint8Array | string,
    session: string,
    flags: KvFlags = 0,
    exists: (id: string) => boolean,
  ): boolean {
    return this.#lockOrUnlock('lock', key, value, session, flags, exists);
  }

  /**
   * Releases the lock `session` holds on `key` and writes `value` and `flags` (`?release=`).
   * @returns false when the key is absent or its lock is not held by `session`.
   * @throws KvRequestError as {@link set} does; ClosedError after {@link close}.
   */
  unlock(key: string, value: Uint8Array | string, session: string, flags: KvFlags = 0): boolean {
    return this.#lockOrUnlock('unlock', key, value, session, flags, () => true);
  }

  /**
   * Deletes `key`, or with `recurse` every key that starts with it.
   * @returns false when `cas` is given and the key's ModifyIndex is another; true otherwise,
   *   also when there was nothing to delete (Consul answers a check-and-delete of an absent
   *   key with true too).
   * @throws KvRequestError for an empty key without `recurse`, a cas that is not an integer
   *   from 0 to 2^53-1, or `recurse` with `cas`; nothing changes.
   * @throws ClosedError after {@link close}.
   */
  delete(key: string, options: KvDeleteOptions = {}): boolean {
    this.#assertOpen();
    const recurse = options.recurse ?? false;
    if (recurse && options.cas !== undefined) {
      throw new KvRequestError('recurse', 'Conflicting flags: recurse and cas cannot be used together');
    }
    if (!recurse && key === '') throw new KvRequestError('key', 'Missing key name');
    if (options.cas !== undefined) checkUint('cas', options.cas);
    return this.#one(
      recurse
        ? { verb: 'delete-tree', key }
        : options.cas === undefined
          ? { verb: 'delete', key }
          : { verb: 'delete-cas', key, index: options.cas },
    );
  }

  /**
   * Runs `ops` as one transaction, as Consul's `/v1/txn` does: every operation sees the ones
   * before it; when all hold, their changes are committed at one new index and emitted as one
   * change; when any fails, nothing changes and every failure is reported with its position.
   * A transaction that changes nothing (reads, or writes of what is there) keeps the index.
   * Values are not checked against {@link maxValueSize} here: the caller refuses those first.
   * @throws ClosedError after {@link close}.
   * @example
   * kv.transaction([{ verb: 'check-not-exists', key: 'leader' },
   *   { verb: 'set', key: 'leader', value: Buffer.from('me'), flags: 0 }], { sessionExists: (id) => sessions.has(id) });
   */
  transaction(ops: readonly KvOp[], context: KvTxnContext): KvTxnOutcome {
    this.#assertOpen();
    const staged = new Staged(this.#entries, this.#index + 1);
    const results: KvTxnResult[] = [];
    const errors: KvTxnError[] = [];
    ops.forEach((op, opIndex) => {
      const outcome = applyOp(staged, op, context);
      if (typeof outcome === 'string') errors.push({ opIndex, what: outcome });
      else results.push(...outcome);
    });
    if (errors.length > 0) return { ok: false, errors };
    if (context.dryRun !== true) this.#commit(staged);
    return { ok: true, results, index: this.#index };
  }

  /**
   * Frees every lock `session` holds, as Consul does when a session is destroyed or expires:
   * with `release` the keys stay and lose their session; with `delete` they are deleted. The
   * changes take the current index, which the caller has just moved ({@link advanceIndex}), so
   * that the session's end and its keys' change are one index.
   * @returns the keys changed.
   */
  releaseSession(session: string, behavior: 'release' | 'delete'): string[] {
    this.#assertOpen();
    const keys = [...(this.#held.get(session) ?? [])];
    if (keys.length === 0) return [];
    const staged = new Staged(this.#entries, this.#index);
    for (const key of keys) {
      const entry = staged.get(key);
      if (entry === undefined) continue;
      if (behavior === 'delete') staged.remove(key);
      else staged.put(key, entry.value, entry.flags, { session: undefined, lockIndex: entry.lockIndex });
    }
    this.#commit(staged);
    return keys;
  }

  /** The sessions holding a lock on some key now. */
  lockHolders(): string[] {
    return [...this.#held.keys()];
  }

  /**
   * Moves the index by one for a change of state that shares it but is not a key (a session
   * created or destroyed), without emitting a change.
   * @returns the new index.
   */
  advanceIndex(): number {
    this.#assertOpen();
    return ++this.#index;
  }

  /** The index at which `key` was deleted, if it is absent and was ever deleted. */
  tombstone(key: string): number | undefined {
    return this.#tombstones.get(key);
  }

  /** Every deleted key that is absent now, with the index of its deletion. */
  tombstones(): Array<[string, number]> {
    return [...this.#tombstones.entries()];
  }

  /**
   * Loads state kept in a data directory into this empty store, without emitting changes.
   * The index becomes the largest of `index` and every restored index, so it never goes back;
   * `reapedIndex` is the {@link reapedIndex} that was kept. Restored tombstones are kept one
   * more TTL from now.
   * @throws Error when the store already holds something; ClosedError after {@link close}.
   * @example
   * kv.restore(entries, [['gone/key', 7]], 12);
   */
  restore(entries: Iterable<KvEntry>, tombstones: Iterable<[string, number]>, index: number, reapedIndex = 0): void {
    this.#assertOpen();
    if (this.#entries.size > 0 || this.#tombstones.size > 0) throw new Error('KvStore.restore: the store is not empty');
    let top = Math.max(this.#index, index);
    for (const entry of entries) {
      this.#entries.set(entry.key, Object.freeze({ ...entry }));
      if (entry.session !== undefined) this.#hold(entry.session, entry.key);
      top = Math.max(top, entry.modifyIndex);
    }
    for (const [key, at] of tombstones) {
      if (this.#entries.has(key)) continue;
      this.#tombstones.set(key, at);
      top = Math.max(top, at);
    }
    this.#index = top;
    this.#tombstones.raiseFloor(reapedIndex);
  }

  /** Refuses writes from now on and drops the listeners of {@link onChange}. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#changed.clear();
  }

  #lockOrUnlock(
    verb: 'lock' | 'unlock',
    key: string,
    value: Uint8Array | string,
    session: string,
    flagsGiven: KvFlags,
    exists: (id: string) => boolean,
  ): boolean {
    this.#assertOpen();
    const field = verb === 'lock' ? 'acquire' : 'release';
    if (key === '') throw new KvRequestError('key', 'Missing key name');
    const flags = checkedFlags(flagsGiven);
    const bytes = this.#checkedValue(value);
    if (session === '') throw new KvRequestError(field, 'missing session');
    if (verb === 'lock' && !exists(session)) {
      throw new KvRequestError(field, `invalid session ${JSON.stringify(session)}`);
    }
    return this.#one({ verb, key, value: bytes, flags, session }, exists);
  }

  // One operation as a transaction of one: true when it held.
  #one(op: KvOp, exists: (id: string) => boolean = () => false): boolean {
    return this.transaction([op], { sessionExists: exists }).ok;
  }

  #checkedValue(value: Uint8Array | string): Uint8Array {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    if (bytes.byteLength > this.#maxValueSize) {
      throw new KvRequestError('value', tooLarge(bytes.byteLength, this.#maxValueSize), 413);
    }
    return bytes;
  }

  #commit(staged: Staged): void {
    if (staged.changed.size === 0) return;
    this.#index = staged.index;
    for (const [key, entry] of staged.changed) {
      const before = this.#entries.get(key);
      if (before?.session !== undefined && before.session !== entry?.session) this.#unhold(before.session, key);
      if (entry === null) {
        this.#entries.delete(key);
        this.#tombstones.set(key, staged.index);
        continue;
      }
      this.#entries.set(key, entry);
      this.#tombstones.delete(key);
      if (entry.session !== undefined) this.#hold(entry.session, key);
    }
    this.#changed.emit({ keys: [...staged.changed.keys()], index: staged.index });
  }

  #hold(session: string, key: string): void {
    let keys = this.#held.get(session);
    if (keys === undefined) this.#held.set(session, (keys = new Set()));
    keys.add(key);
  }

  #unhold(session: string, key: string): void {
    const keys = this.#held.get(session);
    keys?.delete(key);
    if (keys?.size === 0) this.#held.delete(session);
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('kv store');
  }
}

// One operation on the staged view, as Consul's txnKVS runs it: the results it adds, or the
// text of its failure.
function applyOp(staged: Staged, op: KvOp, context: KvTxnContext): KvTxnResult[] | string {
  const { key } = op;
  // Consul's kvsPreApply: every verb but delete-tree names a key.
  if (key === '' && op.verb !== 'delete-tree') return 'Must provide key';
  const written = (entry: KvEntry): KvTxnResult[] => [{ entry, withValue: false }];
  switch (op.verb) {
    case 'set':
      return written(staged.put(key, op.value, op.flags));
    case 'cas': {
      const existing = staged.get(key);
      const holds = op.index === 0 ? existing === undefined : existing?.modifyIndex === op.index;
      if (!holds) return `failed to set key ${quote(key)}, index is stale`;
      return written(staged.put(key, op.value, op.flags));
    }
    case 'lock': {
      if (op.session === '') return 'missing session';
      if (!context.sessionExists(op.session)) return `invalid session ${quote(op.session)}`;
      const existing = staged.get(key);
      if (existing?.session !== undefined && existing.session !== op.session) {
        return `failed to lock key ${quote(key)}, lock is already held`;
      }
      // Taking a free lock moves LockIndex; the holder writing again keeps it.
      const lockIndex =
        existing === undefined ? 1 : existing.session === op.session ? existing.lockIndex : existing.lockIndex + 1;
      return written(staged.put(key, op.value, op.flags, { session: op.session, lockIndex }));
    }
    case 'unlock': {
      if (op.session === '') return 'missing session';
      const existing = staged.get(key);
      if (existing === undefined || existing.session !== op.session) {
        return `failed to unlock key ${quote(key)}, lock isn't held, or is held by another session`;
      }
      return written(staged.put(key, op.value, op.flags, { session: undefined, lockIndex: existing.lockIndex }));
    }
    case 'get': {
      const entry = staged.get(key);
      if (entry === undefined) return `key ${quote(key)} doesn't exist`;
      return [{ entry, withValue: true }];
    }
    case 'get-tree':
      return staged.list(key).map((entry) => ({ entry, withValue: true }));
    case 'check-index': {
      const entry = staged.get(key);
      if (entry === undefined) return `failed to check index, key ${quote(key)} doesn't exist`;
      if (entry.modifyIndex !== op.index) {
        return `failed index check for key ${quote(key)}, current modify index ${entry.modifyIndex} != ${op.index}`;
      }
      return written(entry);
    }
    case 'check-session': {
      const entry = staged.get(key);
      if (entry === undefined) return `failed to check session, key ${quote(key)} doesn't exist`;
      if ((entry.session ?? '') !== op.session) {
        return `failed session check for key ${quote(key)}, current session ${quote(entry.session ?? '')} != ${quote(op.session)}`;
      }
      return written(entry);
    }
    case 'check-not-exists':
      return staged.get(key) === undefined ? [] : `key ${quote(key)} exists`;
    case 'delete':
      staged.remove(key);
      return [];
    case 'delete-tree':
      for (const entry of staged.list(key)) staged.remove(entry.key);
      return [];
    case 'delete-cas': {
      const existing = staged.get(key);
      if (existing === undefined) return [];
      if (existing.modifyIndex !== op.index) return `failed to delete key ${quote(key)}, index is stale`;
      staged.remove(key);
      return [];
    }
  }
}

// Go's %q for the strings Consul quotes in its errors; JSON's escapes are the same for text.
function quote(text: string): string {
  return JSON.stringify(text);
}

/**
 * Consul's 413 text for a value over the limit; `size` is undefined when the body came in
 * chunks and was cut off at the limit.
 */
export function tooLarge(size: number | undefined, max: number): string {
  return (
    `Request body${size === undefined ? '' : `(${size} bytes)`} too large, max size: ${max} bytes. ` +
    'See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.'
  );
}

/**
 * Flags as the store keeps them: a number up to 2^53-1, a bigint above.
 * @throws KvRequestError for a number that is not a safe non-negative integer, or a bigint
 *   outside 0..2^64-1.
 */
export function checkedFlags(flags: KvFlags): KvFlags {
  if (typeof flags === 'number') {
    checkUint('flags', flags);
    return flags;
  }
  if (flags < 0n || flags > maxKvFlags) {
    throw new KvRequestError('flags', `Invalid flags: ${flags} is not an integer from 0 to 2^64-1`);
  }
  return flags <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(flags) : flags;
}

function checkUint(field: 'flags' | 'cas', value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new KvRequestError(field, `Invalid ${field}: ${String(value)} is not an integer from 0 to 2^53-1`);
  }
}

// Consul keeps keys in a radix tree of their UTF-8 bytes; code point order is the same order,
// while JavaScript's `<` compares UTF-16 units and puts U+E000..U+FFFF after the astral planes.
function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i) ?? 0;
    const y = b.codePointAt(i) ?? 0;
    if (x !== y) return x - y;
    // Equal astral code points occupy two units; skip the low surrogate.
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}
