import { TrellisError } from '@trellis/core';

/** One operation of a transaction that did not hold, as Consul reports it (`OpIndex`, `What`). */
export interface KvTxnOpError {
  /** Position of the operation in the transaction, from 0. */
  readonly opIndex: number;
  readonly what: string;
}

/**
 * A `/v1/txn` transaction rolled back: nothing it held changed. `errors` are Consul's, one per
 * operation that failed (a check-index whose key moved, a lock held by another session, ...).
 *
 * @example
 * const kv = new ConsulKv();
 * try { await kv.txn([{ verb: 'check-not-exists', key: 'a' }, { verb: 'set', key: 'a', value: '1' }]); }
 * catch (e) { if (KvTxnError.is(e)) console.log(e.errors[0]?.what); }
 */
export class KvTxnError extends TrellisError {
  readonly errors: readonly KvTxnOpError[];

  constructor(errors: readonly KvTxnOpError[]) {
    const what = errors.map((e) => `operation ${e.opIndex}: ${e.what}`).join('; ');
    super('KV_TXN_FAILED', `KV transaction rolled back, nothing changed: ${what || 'no reason given'}`, {
      retryable: false,
    });
    this.errors = errors;
  }

  static override is(error: unknown): error is KvTxnError {
    return TrellisError.hasCode(error, 'KV_TXN_FAILED');
  }
}

/**
 * A value or a listing is larger than the KV takes or than this client reads: Consul's value
 * limit is 512 KiB (`kv_max_value_size`), and a listing is cut at `maxEntries`.
 *
 * @example
 * const kv = new ConsulKv();
 * try { await kv.put('config/forum/banner', 'x'.repeat(600 * 1024)); }
 * catch (e) { if (KvTooLargeError.is(e)) console.log(e.message); }
 */
export class KvTooLargeError extends TrellisError {
  constructor(what: string, size: number, limit: number) {
    super('KV_TOO_LARGE', `${what} is too large: ${size} > ${limit}`, { retryable: false });
  }

  static override is(error: unknown): error is KvTooLargeError {
    return TrellisError.hasCode(error, 'KV_TOO_LARGE');
  }
}

/**
 * The live rules of a service moved between the read and the write: another writer changed
 * them first. Nothing was written; read again (`trellis rules get`) and decide.
 *
 * @example
 * async function write(set: () => Promise<unknown>): Promise<void> {
 *   try { await set(); }
 *   catch (e) { if (RulesConflictError.is(e)) console.log('someone else changed the rules of', e.service); else throw e; }
 * }
 */
export class RulesConflictError extends TrellisError {
  constructor(service: string, detail: string) {
    super('RULES_CONFLICT', `the rules of service "${service}" changed while they were being written: ${detail}`, {
      service,
      retryable: true,
    });
  }

  static override is(error: unknown): error is RulesConflictError {
    return TrellisError.hasCode(error, 'RULES_CONFLICT');
  }
}
