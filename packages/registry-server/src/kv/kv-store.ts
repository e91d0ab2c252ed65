import { ClosedError, Emitter, type Event } from '@trellis/core';

/** Consul's default `kv_max_value_size`: 512 KiB. */
export const kvMaxValueSize = 512 * 1024;

/** One key and its value, with Consul's indexes. Entries are replaced, never changed in place. */
export interface KvEntry {
  readonly key: string;
  /** The bytes as written; shared with the store, so callers must not write to it. */
  readonly value: Buffer;
  /** An opaque unsigned integer the client chose, from 0 to 2^53-1; 0 when not given. */
  readonly flags: number;
  /** The store index when the key was created (again, after a delete). */
  readonly createIndex: number;
  /** The store index of the last write that changed the entry: the `cas` a client passes. */
  readonly modifyIndex: number;
  /** Always 0: this server has no sessions, so no key is ever locked. */
  readonly lockIndex: number;
}

/** What one write changed: the keys set or deleted, and the store index it moved to. */
export interface KvChange {
  readonly keys: readonly string[];
  readonly index: number;
}

/** Options of {@link KvStore.set}. */
export interface KvSetOptions {
  /** Stored with the value; default 0, also when the key had other flags before. */
  readonly flags?: number;
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
}

/**
 * A write the store refuses; `field` names what is wrong (`key`, `value`, `flags`, `cas`,
 * `recurse`) and `statusCode` is the HTTP status to answer with (413 for a value too large,
 * 400 otherwise). The message is the text to answer with.
 */
export class KvRequestError extends Error {
  readonly field: string;
  readonly statusCode: 400 | 413;

  constructor(field: string, message: string, statusCode: 400 | 413 = 400) {
    super(message);
    this.name = 'KvRequestError';
    this.field = field;
    this.statusCode = statusCode;
  }
}

/**
 * Consul's key/value store, as state only (no HTTP): keys with byte values, flags, and the
 * indexes clients use for check-and-set and blocking queries.
 *
 * The store index starts at 1, never 0, and moves by one on each write that changes
 * something. As in Consul (state store `kvsSetTxn`), a set that leaves value and flags as
 * they are changes nothing: the key keeps its ModifyIndex, the index stays, and no change is
 * emitted, so watchers are not woken by writers that repeat themselves. Deleting a key that
 * is absent changes nothing either.
 *
 * Deleted keys leave a tombstone holding the index of their deletion (dropped when the key is
 * written again), so that the index of a prefix never goes back when a key under it goes
 * away: a watcher of the prefix sees the deletion as a later index.
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
  readonly #tombstones = new Map<string, number>();
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
    for (const [key, index] of this.#tombstones) if (index > max && key.startsWith(prefix)) max = index;
    return max === 0 ? this.#index : max;
  }

  /**
   * Writes `value` (a string is stored as UTF-8) under `key`.
   * @returns false when `cas` is given and does not hold (0: the key exists; N: the key is
   *   absent or its ModifyIndex is not N); true otherwise, also when nothing had to change.
   * @throws KvRequestError for an empty key, flags or cas that are not integers from 0 to
   *   2^53-1, or a value larger than {@link maxValueSize} (statusCode 413); nothing changes.
   * @throws ClosedError after {@link close}.
   */
  set(key: string, value: Uint8Array | string, options: KvSetOptions = {}): boolean {
    this.#assertOpen();
    const flags = options.flags ?? 0;
    if (key === '') throw new KvRequestError('key', 'Missing key name');
    checkUint('flags', flags);
    if (options.cas !== undefined) checkUint('cas', options.cas);
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    if (bytes.byteLength > this.#maxValueSize) {
      throw new KvRequestError('value', tooLarge(bytes.byteLength, this.#maxValueSize), 413);
    }

    const existing = this.#entries.get(key);
    if (options.cas !== undefined) {
      if (options.cas === 0 ? existing !== undefined : existing?.modifyIndex !== options.cas) return false;
    }
    if (existing !== undefined && existing.flags === flags && existing.value.equals(bytes)) return true;

    const index = ++this.#index;
    this.#entries.set(
      key,
      Object.freeze({
        key,
        // A copy, so that the caller reusing its buffer cannot change what is stored.
        value: Buffer.from(bytes),
        flags,
        createIndex: existing?.createIndex ?? index,
        modifyIndex: index,
        lockIndex: 0,
      }),
    );
    this.#tombstones.delete(key);
    this.#changed.emit({ keys: [key], index });
    return true;
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

    const doomed = recurse ? this.list(key).map((entry) => entry.key) : this.#entries.has(key) ? [key] : [];
    if (options.cas !== undefined && doomed.length > 0 && this.#entries.get(key)?.modifyIndex !== options.cas) {
      return false;
    }
    if (doomed.length === 0) return true;
    const index = ++this.#index;
    for (const gone of doomed) {
      this.#entries.delete(gone);
      this.#tombstones.set(gone, index);
    }
    this.#changed.emit({ keys: doomed, index });
    return true;
  }

  /** The index at which `key` was deleted, if it is absent and was ever deleted. */
  tombstone(key: string): number | undefined {
    return this.#tombstones.get(key);
  }

  /** Every deleted key that is absent now, with the index of its deletion. */
  tombstones(): Array<[string, number]> {
    return [...this.#tombstones];
  }

  /**
   * Loads state kept in a data directory into this empty store, without emitting changes.
   * The index becomes the largest of `index` and every restored index, so it never goes back.
   * @throws Error when the store already holds something; ClosedError after {@link close}.
   * @example
   * kv.restore(entries, [['gone/key', 7]], 12);
   */
  restore(entries: Iterable<KvEntry>, tombstones: Iterable<[string, number]>, index: number): void {
    this.#assertOpen();
    if (this.#entries.size > 0 || this.#tombstones.size > 0) throw new Error('KvStore.restore: the store is not empty');
    let top = Math.max(this.#index, index);
    for (const entry of entries) {
      this.#entries.set(entry.key, Object.freeze({ ...entry }));
      top = Math.max(top, entry.modifyIndex);
    }
    for (const [key, at] of tombstones) {
      if (this.#entries.has(key)) continue;
      this.#tombstones.set(key, at);
      top = Math.max(top, at);
    }
    this.#index = top;
  }

  /** Refuses writes from now on and drops the listeners of {@link onChange}. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#changed.clear();
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('kv store');
  }
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
