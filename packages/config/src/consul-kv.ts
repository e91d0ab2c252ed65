import type Consul from 'consul';
import { ConfigError, RegistryRejectedError, RegistryUnavailableError } from '@trellis/core';
import { blockingRead, connectConsul, sendToConsul, type ConsulOptions } from '@trellis/registry';
import { KvTooLargeError, KvTxnError, type KvTxnOpError } from './errors.js';
import { KvWatch, type KvWatchOptions } from './kv-watch.js';

/** Consul's limit on one value (`kv_max_value_size`): 512 KiB. */
export const maxKvValueBytes = 512 * 1024;

/** Consul's limit on the operations of one transaction (`maxTxnOps`). */
export const maxTxnOps = 64;

/** Options of {@link ConsulKv}: where the registry is, and how much one listing may hold. */
export interface ConsulKvOptions extends ConsulOptions {
  /** Entries a listing (or a prefix watch) reads at most; past it, KvTooLargeError. Default 10 000. */
  readonly maxEntries?: number;
}

/** One key as the KV holds it; `value` is the stored bytes as UTF-8 text. */
export interface KvEntry {
  readonly key: string;
  readonly value: string;
  readonly modifyIndex: number;
  readonly createIndex: number;
  /** The session holding the key's lock, if one does. */
  readonly session?: string;
}

/** What one read answered: the entries, and the X-Consul-Index to block on next. */
export interface KvView {
  readonly index: number;
  readonly entries: readonly KvEntry[];
}

/** How {@link ConsulKv.query} reads. */
export interface KvQueryOptions {
  /** Everything under `key` as a prefix, instead of the key alone. */
  readonly recurse?: boolean;
  /** Blocks until the index moves past this one (or `waitMs` passes); 0 answers at once. */
  readonly index?: number;
  /** How long the registry may hold a blocking query; default 60 000 ms. */
  readonly waitMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * One operation of a {@link ConsulKv.txn} transaction: Consul's KV verbs, with text values.
 * `cas` and `delete-cas` with index 0 hold only when the key does not exist.
 */
export type KvOp =
  | { readonly verb: 'set'; readonly key: string; readonly value: string }
  | { readonly verb: 'cas'; readonly key: string; readonly value: string; readonly index: number }
  | { readonly verb: 'lock' | 'unlock'; readonly key: string; readonly value: string; readonly session: string }
  | { readonly verb: 'check-index' | 'delete-cas'; readonly key: string; readonly index: number }
  | { readonly verb: 'check-session'; readonly key: string; readonly session: string }
  | {
      readonly verb: 'get' | 'get-tree' | 'check-not-exists' | 'delete' | 'delete-tree';
      readonly key: string;
    };

/** A session of {@link ConsulKv.createSession}. */
export interface SessionOptions {
  /** A name shown by `consul` tools and the dashboard. */
  readonly name?: string;
  /** The session ends this long after its last renewal (Consul: from 10 s to 24 h); default none. */
  readonly ttlMs?: number;
  /** What happens to the keys it locks when it ends: `release` (Consul's default) or `delete`. */
  readonly behavior?: 'release' | 'delete';
  /** Time after the session ends during which its keys cannot be locked again; default 0. */
  readonly lockDelayMs?: number;
}

/** A KV entry in Consul's JSON, as the npm client hands it (the value already decoded). */
interface RawEntry {
  Key: string;
  Value?: string | null;
  Session?: string;
  CreateIndex: number;
  ModifyIndex: number;
}

/**
 * The registry's key/value store through Consul's HTTP API (`/v1/kv`, `/v1/txn`,
 * `/v1/session`) on the official `consul` client, as `ConsulRegistry` uses it: the same code
 * talks to the Trellis registry server and to a Consul agent. Failures are typed as the
 * registry's: RegistryUnavailableError (unreachable, retryable) and RegistryRejectedError (the
 * registry refused, with its status).
 *
 * @throws ConfigError from the constructor for a bad `url`, `timeoutMs` or `maxEntries`.
 * @example
 * const kv = new ConsulKv({ url: 'http://127.0.0.1:8500' });
 * await kv.put('config/forum/pageSize', '20');
 * const entry = await kv.get('config/forum/pageSize'); // { key, value: '20', modifyIndex, ... }
 * await kv.close();
 */
export class ConsulKv {
  readonly url: string;
  readonly #consul: Consul;
  readonly #timeoutMs: number;
  readonly #maxEntries: number;
  readonly #watches = new Set<KvWatch>();

  constructor(options: ConsulKvOptions = {}) {
    const { url, consul, timeoutMs } = connectConsul(options, 'kv');
    const maxEntries = options.maxEntries ?? 10_000;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new ConfigError('kv.maxEntries', `must be a positive integer, got ${maxEntries}`);
    }
    this.url = url;
    this.#consul = consul;
    this.#timeoutMs = timeoutMs;
    this.#maxEntries = maxEntries;
  }

  /** The key's entry; undefined when there is none. */
  async get(key: string): Promise<KvEntry | undefined> {
    return (await this.query(key)).entries[0];
  }

  /**
   * Every entry under `prefix`, in key order, in one recursive read.
   * @throws KvTooLargeError past `maxEntries` entries.
   */
  async list(prefix: string): Promise<KvEntry[]> {
    return [...(await this.query(prefix, { recurse: true })).entries];
  }

  /**
   * The keys under `prefix` (no values), in order; with `separator`, only up to it (Consul's
   * `?keys&separator=`), so that `keys('trellis/rules/', '/')` names the services.
   * @throws KvTooLargeError past `maxEntries` keys.
   */
  async keys(prefix: string, separator?: string): Promise<string[]> {
    checkKey(prefix, true);
    let keys: unknown;
    try {
      keys = await this.#send('keys', () =>
        this.#consul.kv.keys({
          key: prefix,
          ...(separator === undefined ? {} : { separator }),
          ...this.#requestOptions(),
        } as { key: string }),
      );
    } catch (error) {
      // Consul answers 404 for a prefix with nothing under it.
      if (RegistryRejectedError.is(error) && error.status === 404) return [];
      throw error;
    }
    if (keys === undefined || keys === null) return [];
    if (!Array.isArray(keys)) throw this.#unexpected('keys');
    if (keys.length > this.#maxEntries)
      throw new KvTooLargeError(`the listing of "${prefix}"`, keys.length, this.#maxEntries);
    return keys.map(String);
  }

  /**
   * Reads a key (or, with `recurse`, a prefix) with its X-Consul-Index; with `index`, as a
   * blocking query held until something changes. What {@link KvWatch} runs.
   * @throws KvTooLargeError past `maxEntries` entries.
   */
  async query(key: string, options: KvQueryOptions = {}): Promise<KvView> {
    checkKey(key, options.recurse === true);
    const { index, body } = await blockingRead(options, this.#timeoutMs, (fields) =>
      this.#send('get', () =>
        this.#consul.kv.get({ key, ...(options.recurse === true ? { recurse: true } : {}), ...fields } as {
          key: string;
        }),
      ),
    );
    const raw = body === undefined || body === null ? [] : Array.isArray(body) ? (body as unknown[]) : [body];
    if (raw.length > this.#maxEntries)
      throw new KvTooLargeError(`the listing of "${key}"`, raw.length, this.#maxEntries);
    return { index, entries: raw.map((item) => this.#entry(item, 'get')) };
  }

  /**
   * Writes a value. With `cas`, only if the key's modify index is still that (0: only if it
   * does not exist); with `session`, only if the key's lock is free or that session's
   * (Consul's `?acquire`), locking it for the session.
   * @returns false when the check-and-set or the lock did not hold (nothing written).
   * @throws KvTooLargeError for a value over 512 KiB.
   */
  async put(
    key: string,
    value: string,
    options: { readonly cas?: number; readonly session?: string } = {},
  ): Promise<boolean> {
    checkKey(key, false);
    checkValue(key, value);
    const answer = await this.#send('put', () =>
      this.#consul.kv.set({
        key,
        value,
        ...(options.cas === undefined ? {} : { cas: options.cas }),
        ...(options.session === undefined ? {} : { acquire: options.session }),
        ...this.#requestOptions(),
      }),
    );
    return answer === true;
  }

  /**
   * Deletes a key, or with `recurse` every key under the prefix; with `cas`, only if the key's
   * modify index is still that.
   * @returns false when the check-and-set did not hold.
   */
  async delete(key: string, options: { readonly cas?: number; readonly recurse?: boolean } = {}): Promise<boolean> {
    checkKey(key, options.recurse === true);
    const answer = await this.#send('delete', () =>
      this.#consul.kv.del({
        key,
        ...(options.recurse === true ? { recurse: true } : {}),
        ...(options.cas === undefined ? {} : { cas: options.cas }),
        ...this.#requestOptions(),
      }),
    );
    return answer === true;
  }

  /**
   * Runs `ops` as one Consul transaction (`PUT /v1/txn`): all hold, or nothing changes.
   * @returns the entries the operations answered (writes without their values; `get` and
   *   `get-tree` with them).
   * @throws KvTxnError (code KV_TXN_FAILED) with Consul's per-operation errors when it rolled
   *   back; ConfigError for no operations or more than 64; KvTooLargeError for a value over
   *   512 KiB.
   */
  async txn(ops: readonly KvOp[]): Promise<KvEntry[]> {
    if (ops.length === 0 || ops.length > maxTxnOps) {
      throw new ConfigError('txn', `takes 1 to ${maxTxnOps} operations, got ${ops.length}`);
    }
    const body = ops.map((op) => {
      checkKey(op.key, op.verb === 'delete-tree' || op.verb === 'get-tree');
      const value = 'value' in op ? op.value : undefined;
      if (value !== undefined) checkValue(op.key, value);
      return {
        KV: {
          Verb: op.verb,
          Key: op.key,
          ...(value === undefined ? {} : { Value: Buffer.from(value).toString('base64') }),
          ...('index' in op ? { Index: op.index } : {}),
          ...('session' in op ? { Session: op.session } : {}),
        },
      };
    });
    const answer = await this.#send('txn', async () => {
      try {
        // The client sends the operations as given; its typings describe another shape.
        type Operations = Parameters<Consul['transaction']['create']>[0];
        const operations = body as unknown as Operations;
        const value: unknown = await this.#consul.transaction.create(operations, {
          operations,
          ...this.#requestOptions(),
        });
        return rolledBack(value) ?? value;
      } catch (error) {
        const errors = rolledBack(error);
        if (errors !== undefined) return errors;
        throw error;
      }
    });
    if (isRollback(answer)) throw new KvTxnError(answer.rolledBack);
    const results = (answer as { Results?: unknown } | undefined)?.Results;
    if (!Array.isArray(results)) throw this.#unexpected('txn');
    return results.map((result) => {
      const entry = (result as { KV?: RawEntry }).KV;
      const item = entry === undefined ? undefined : { ...entry, Value: decode(entry.Value) };
      return this.#entry(item, 'txn');
    });
  }

  /**
   * Follows a key (or with `recurse` a prefix) with blocking queries; see {@link KvWatch}.
   * The watch ends with {@link KvWatch.close}, or with this client's {@link close}.
   */
  watch(keyOrPrefix: string, options: KvWatchOptions = {}): KvWatch {
    checkKey(keyOrPrefix, options.recurse === true);
    const recurse = options.recurse === true;
    const watch = new KvWatch(
      keyOrPrefix,
      (query) => this.query(keyOrPrefix, { ...query, recurse }),
      options,
      () => this.#watches.delete(watch),
    );
    this.#watches.add(watch);
    return watch;
  }

  /**
   * Creates a session (`/v1/session/create`) on the registry's node.
   * @returns its ID.
   * @throws RegistryRejectedError for a TTL Consul refuses (below 10 s or over 24 h).
   */
  async createSession(options: SessionOptions = {}): Promise<string> {
    const answer = await this.#send('session create', () =>
      this.#consul.session.create({
        ...(options.name === undefined ? {} : { name: options.name }),
        ...(options.ttlMs === undefined ? {} : { ttl: `${Math.ceil(options.ttlMs)}ms` }),
        ...(options.behavior === undefined ? {} : { behavior: options.behavior }),
        lockdelay: `${Math.ceil(options.lockDelayMs ?? 0)}ms`,
        ...this.#requestOptions(),
      }),
    );
    const id = (answer as { ID?: unknown } | undefined)?.ID;
    if (typeof id !== 'string') throw this.#unexpected('session create');
    return id;
  }

  /**
   * Restarts a session's TTL (`/v1/session/renew`).
   * @returns false when the session no longer exists (it expired or was destroyed).
   */
  async renewSession(id: string): Promise<boolean> {
    try {
      await this.#send('session renew', () => this.#consul.session.renew({ id, ...this.#requestOptions() }));
      return true;
    } catch (error) {
      if (RegistryRejectedError.is(error) && error.status === 404) return false;
      throw error;
    }
  }

  /** Ends a session (`/v1/session/destroy`): its locks are released, or its keys deleted. */
  async destroySession(id: string): Promise<void> {
    await this.#send('session destroy', () => this.#consul.session.destroy({ id, ...this.#requestOptions() }));
  }

  /** Ends every watch made by {@link watch} and closes the client's connections. */
  async close(): Promise<void> {
    for (const watch of [...this.#watches]) watch.close();
    this.#consul.destroy();
  }

  // The npm client takes a per-request timeout, though its typings omit it.
  #requestOptions(): { timeout: number } {
    return { timeout: this.#timeoutMs };
  }

  #send<T>(operation: string, request: () => Promise<T>): Promise<T> {
    return sendToConsul(this.url, `kv ${operation}`, request);
  }

  #entry(item: unknown, operation: string): KvEntry {
    const raw = item as Partial<RawEntry> | undefined;
    if (raw === undefined || typeof raw.Key !== 'string' || typeof raw.ModifyIndex !== 'number') {
      throw this.#unexpected(operation);
    }
    return {
      key: raw.Key,
      value: typeof raw.Value === 'string' ? raw.Value : '',
      modifyIndex: raw.ModifyIndex,
      createIndex: typeof raw.CreateIndex === 'number' ? raw.CreateIndex : raw.ModifyIndex,
      ...(typeof raw.Session === 'string' && raw.Session !== '' ? { session: raw.Session } : {}),
    };
  }

  #unexpected(operation: string): RegistryUnavailableError {
    return new RegistryUnavailableError(this.url, new Error(`kv ${operation} answered something that is not Consul's`));
  }
}

// A rollback is carried out of sendToConsul as a plain object: an Error there means "unreachable".
interface Rollback {
  readonly rolledBack: readonly KvTxnOpError[];
}

function isRollback(answer: unknown): answer is Rollback {
  return typeof answer === 'object' && answer !== null && 'rolledBack' in answer;
}

/** Consul's `Errors` of a 409 answer, or undefined for anything else. */
function rolledBack(outcome: unknown): Rollback | undefined {
  const failure = outcome as { statusCode?: unknown; response?: { body?: unknown } } | undefined;
  if (failure?.statusCode !== 409) return undefined;
  const errors = (failure.response?.body as { Errors?: unknown } | undefined)?.Errors;
  const list: KvTxnOpError[] = Array.isArray(errors)
    ? errors.map((e: { OpIndex?: unknown; What?: unknown }) => ({
        opIndex: typeof e.OpIndex === 'number' ? e.OpIndex : 0,
        what: typeof e.What === 'string' ? e.What : 'failed',
      }))
    : [];
  return { rolledBack: list };
}

function decode(value: string | null | undefined): string {
  return typeof value === 'string' ? Buffer.from(value, 'base64').toString('utf8') : '';
}

function checkKey(key: string, prefix: boolean): void {
  if (typeof key !== 'string' || (!prefix && key === '')) throw new ConfigError('key', 'must be a non-empty string');
  if (key.startsWith('/')) throw new ConfigError('key', `must not start with "/", got "${key}"`);
}

function checkValue(key: string, value: string): void {
  const size = Buffer.byteLength(value);
  if (size > maxKvValueBytes) throw new KvTooLargeError(`the value of "${key}" (bytes)`, size, maxKvValueBytes);
}
