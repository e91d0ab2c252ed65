import { randomUUID } from 'node:crypto';
import { ClosedError, Emitter, systemClock, type Clock, type Event, type Timer } from '@trellis/core';
import type { CheckStatus } from '../catalog/service-definition.js';
import type { KvStore } from '../kv/kv-store.js';
import {
  maxLockDelayMs,
  SessionRequestError,
  tiedCheckIds,
  type SessionBehavior,
  type SessionDefinition,
  type ServiceCheckRef,
} from './session-definition.js';

/** A live session, as `/v1/session/info` answers it (in milliseconds where Consul has nanoseconds). */
export interface SessionRecord {
  readonly id: string;
  readonly name: string;
  readonly node: string;
  readonly lockDelayMs: number;
  readonly behavior: SessionBehavior;
  /** As created (`"30s"`), or "" for none. */
  readonly ttl: string;
  readonly ttlMs: number;
  readonly nodeChecks: readonly string[] | null;
  readonly serviceChecks: readonly ServiceCheckRef[] | null;
  /** Consul's field before 1.7; answered only when not empty. */
  readonly checks: readonly string[];
  readonly createIndex: number;
  readonly modifyIndex: number;
}

/** Why a session ended: destroyed on request, its TTL ran out, or a check it is tied to failed. */
export type SessionEndReason = 'request' | 'ttl' | 'check';

/** A session created or ended; `index` is the store index it happened at. */
export type SessionChange =
  | { readonly type: 'created'; readonly session: SessionRecord; readonly index: number }
  | {
      readonly type: 'destroyed';
      readonly session: SessionRecord;
      readonly index: number;
      readonly reason: SessionEndReason;
      /** The keys whose locks it held: released, or deleted for behavior `delete`. */
      readonly keys: readonly string[];
    };

/** Options of {@link SessionStore}. */
export interface SessionStoreOptions {
  /** Where locks live; sessions share its index. */
  readonly kv: KvStore;
  /** Drives TTL expiry and lock delays; default {@link systemClock}. */
  readonly clock?: Clock;
  /** Whether a node is registered (a session belongs to one). */
  readonly nodeExists: (node: string) => boolean;
  /** The status of a check of a node, or undefined when it has none of that ID. */
  readonly checkStatus: (node: string, checkId: string) => CheckStatus | undefined;
  /** Sessions one node may hold at once; default {@link defaultMaxSessionsPerNode}. */
  readonly maxSessionsPerNode?: number;
}

/**
 * The sessions a node may hold at once, by default. Consul has no such cap; this server must
 * stay bounded, and 10,000 is far beyond what leader election or locks use (one a process).
 */
export const defaultMaxSessionsPerNode = 10_000;

// Consul multiplies a session's TTL by this before it expires one: a grace for renewals in flight.
const ttlMultiplier = 2;
// Past this many lock delays held, expired ones are swept when another is added.
const lockDelaySweepAt = 1_024;

interface SessionState {
  record: SessionRecord;
  timer: Timer | undefined;
}

/**
 * Consul's sessions: what `consul lock`, leader election and distributed locks build on. A
 * session belongs to a node, may be tied to checks of it (by default `serfHealth`), and may
 * have a TTL that clients renew. It ends when destroyed, when its TTL runs out (Consul's rule:
 * after up to twice the TTL since the last renewal), or when a tied check goes critical or is
 * removed; then its locks are released (or, with behavior `delete`, their keys deleted), and
 * for its lock delay (default 15 s, at most 60 s) no session can take those locks again, so
 * that a holder that lost its session has time to notice before another acts as holder.
 *
 * Sessions share the KV store's index, so a session's end and the release of its locks are
 * one index, as in Consul. All timing goes through the clock.
 *
 * @example
 * const sessions = new SessionStore({ kv, clock, nodeExists: (n) => n === 'node-1',
 *   checkStatus: (_node, id) => (id === 'serfHealth' ? 'passing' : catalog.check(id)?.status) });
 * const { id } = sessions.create(decodeSessionDefinition('{"TTL":"15s"}', 'node-1'));
 * kv.lock('leader', 'me', id, 0, (s) => sessions.has(s)); // true
 */
export class SessionStore {
  readonly #kv: KvStore;
  readonly #clock: Clock;
  readonly #nodeExists: (node: string) => boolean;
  readonly #checkStatus: (node: string, checkId: string) => CheckStatus | undefined;
  readonly #maxPerNode: number;
  readonly #sessions = new Map<string, SessionState>();
  readonly #perNode = new Map<string, number>();
  // "node\0checkId" -> the sessions tied to that check.
  readonly #tied = new Map<string, Set<string>>();
  // Key -> when (clock ms) its lock delay ends.
  readonly #lockDelays = new Map<string, number>();
  readonly #changed = new Emitter<SessionChange>();
  #index = 1;
  #closed = false;

  /** Fires after a session is created or ends, once the stores are consistent. */
  readonly onChange: Event<SessionChange> = this.#changed.event;

  /** @throws RangeError for a `maxSessionsPerNode` that is not a positive integer. */
  constructor(options: SessionStoreOptions) {
    const max = options.maxSessionsPerNode ?? defaultMaxSessionsPerNode;
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('maxSessionsPerNode must be a positive integer');
    this.#kv = options.kv;
    this.#clock = options.clock ?? systemClock;
    this.#nodeExists = options.nodeExists;
    this.#checkStatus = options.checkStatus;
    this.#maxPerNode = max;
  }

  /** The index of the last session created or ended: what session reads answer with. */
  get index(): number {
    return this.#index;
  }

  /** Sessions live now. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Whether `id` is a live session. */
  has(id: string): boolean {
    return this.#sessions.has(id);
  }

  /** The live session `id`, or undefined. */
  get(id: string): SessionRecord | undefined {
    return this.#sessions.get(id)?.record;
  }

  /** Every live session, ordered by ID as Consul lists them. */
  list(): SessionRecord[] {
    return [...this.#sessions.values()].map((s) => s.record).sort((a, b) => compare(a.id, b.id));
  }

  /** The live sessions of `node`, ordered by ID. */
  ofNode(node: string): SessionRecord[] {
    return this.list().filter((record) => record.node === node);
  }

  /**
   * Creates a session, with a new random ID, and starts its TTL.
   * @throws SessionRequestError with Consul's text for a node that is not registered
   *   ("Missing node registration"), a tied check that does not exist or is critical, and
   *   (statusCode 429) a node already holding `maxSessionsPerNode` sessions.
   * @throws ClosedError after {@link close}.
   */
  create(def: SessionDefinition): SessionRecord {
    this.#assertOpen();
    if (!this.#nodeExists(def.node)) throw new SessionRequestError('Node', 'Missing node registration');
    for (const checkId of tiedCheckIds(def)) {
      const status = this.#checkStatus(def.node, checkId);
      if (status === undefined) throw new SessionRequestError('NodeChecks', `Missing check '${checkId}' registration`);
      if (status === 'critical') throw new SessionRequestError('NodeChecks', `Check '${checkId}' is in critical state`);
    }
    const count = this.#perNode.get(def.node) ?? 0;
    if (count >= this.#maxPerNode) {
      throw new SessionRequestError(
        'Node',
        `Too many sessions: node "${def.node}" holds ${count}, the most this server allows (maxSessionsPerNode); destroy unused sessions first`,
        429,
      );
    }
    let id: string;
    do id = randomUUID();
    while (this.#sessions.has(id));
    const index = this.#kv.advanceIndex();
    const { ttlMs, ...rest } = def;
    const record: SessionRecord = Object.freeze({ id, ...rest, ttlMs, createIndex: index, modifyIndex: index });
    this.#add(record);
    this.#index = index;
    this.#changed.emit({ type: 'created', session: record, index });
    return record;
  }

  /**
   * Destroys a session, releasing (or deleting) its locks; they cannot be taken again for its
   * lock delay.
   * @returns false when there is no such session (Consul answers true all the same).
   */
  destroy(id: string): boolean {
    this.#assertOpen();
    return this.#end(id, 'request');
  }

  /**
   * Restarts a session's TTL, as `/v1/session/renew` does.
   * @returns the session, or undefined when there is none of that ID (ended, or never was).
   */
  renew(id: string): SessionRecord | undefined {
    this.#assertOpen();
    const state = this.#sessions.get(id);
    if (state === undefined) return undefined;
    this.#arm(state);
    return state.record;
  }

  /**
   * When `key`'s lock delay ends (clock ms), or undefined when it has none now. A lock of the
   * key must be refused before then.
   */
  lockDelayUntil(key: string): number | undefined {
    const until = this.#lockDelays.get(key);
    if (until === undefined) return undefined;
    if (until > this.#clock.now()) return until;
    this.#lockDelays.delete(key);
    return undefined;
  }

  /**
   * Ends the sessions tied to checks that went critical or are gone. Call it after a change of
   * checks: with the IDs of the checks that changed, or with none to look at every tied check
   * (a service deregistered, its checks with it) and every node (one deregistered takes its
   * sessions with it, as in Consul).
   */
  checksChanged(node: string, checkIds?: readonly string[]): void {
    if (this.#closed) return;
    if (checkIds === undefined) {
      for (const name of [...this.#perNode.keys()]) {
        if (this.#nodeExists(name)) continue;
        for (const session of this.ofNode(name)) this.#end(session.id, 'check');
      }
    }
    const keys = checkIds === undefined ? [...this.#tied.keys()] : checkIds.map((id) => tieKey(node, id));
    for (const key of keys) {
      const sessions = this.#tied.get(key);
      if (sessions === undefined) continue;
      const [tiedNode = '', checkId = ''] = key.split('\0');
      const status = this.#checkStatus(tiedNode, checkId);
      if (status !== undefined && status !== 'critical') continue;
      for (const id of [...sessions]) this.#end(id, 'check');
    }
  }

  /**
   * Loads sessions kept in a data directory, without emitting changes. Each TTL starts afresh,
   * as Consul resets them when a new leader takes over. Sessions whose node or a tied check is
   * gone are dropped, and locks held by sessions that are not live are released.
   * @throws Error when the store already holds sessions; ClosedError after {@link close}.
   */
  restore(records: Iterable<SessionRecord>, index: number): void {
    this.#assertOpen();
    if (this.#sessions.size > 0) throw new Error('SessionStore.restore: the store is not empty');
    for (const record of records) {
      const tied = tiedCheckIds(record).map((checkId) => this.#checkStatus(record.node, checkId));
      if (!this.#nodeExists(record.node) || tied.some((s) => s === undefined || s === 'critical')) continue;
      this.#add(Object.freeze({ ...record }));
    }
    this.#index = Math.max(this.#index, index);
    for (const holder of this.#kv.lockHolders()) {
      if (this.#sessions.has(holder)) continue;
      this.#kv.advanceIndex();
      this.#kv.releaseSession(holder, 'release');
    }
  }

  /** Cancels every TTL timer and refuses changes from now on. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const state of this.#sessions.values()) state.timer?.cancel();
    this.#changed.clear();
  }

  #add(record: SessionRecord): void {
    const state: SessionState = { record, timer: undefined };
    this.#sessions.set(record.id, state);
    this.#perNode.set(record.node, (this.#perNode.get(record.node) ?? 0) + 1);
    for (const checkId of tiedCheckIds(record)) {
      const key = tieKey(record.node, checkId);
      let ids = this.#tied.get(key);
      if (ids === undefined) this.#tied.set(key, (ids = new Set()));
      ids.add(record.id);
    }
    this.#arm(state);
  }

  #arm(state: SessionState): void {
    state.timer?.cancel();
    const { id, ttlMs } = state.record;
    state.timer = ttlMs > 0 ? this.#clock.setTimer(ttlMs * ttlMultiplier, () => this.#end(id, 'ttl')) : undefined;
  }

  #end(id: string, reason: SessionEndReason): boolean {
    const state = this.#sessions.get(id);
    if (state === undefined || this.#closed) return false;
    const { record } = state;
    state.timer?.cancel();
    this.#sessions.delete(id);
    const left = (this.#perNode.get(record.node) ?? 1) - 1;
    if (left > 0) this.#perNode.set(record.node, left);
    else this.#perNode.delete(record.node);
    for (const checkId of tiedCheckIds(record)) {
      const key = tieKey(record.node, checkId);
      const ids = this.#tied.get(key);
      ids?.delete(id);
      if (ids?.size === 0) this.#tied.delete(key);
    }
    const index = this.#kv.advanceIndex();
    this.#index = index;
    const keys = this.#kv.releaseSession(id, record.behavior);
    const delay = Math.min(record.lockDelayMs, maxLockDelayMs);
    if (delay > 0 && keys.length > 0) {
      const now = this.#clock.now();
      if (this.#lockDelays.size >= lockDelaySweepAt) {
        for (const [key, until] of this.#lockDelays) if (until <= now) this.#lockDelays.delete(key);
      }
      for (const key of keys) this.#lockDelays.set(key, now + delay);
    }
    this.#changed.emit({ type: 'destroyed', session: record, index, reason, keys });
    return true;
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('session store');
  }
}

function tieKey(node: string, checkId: string): string {
  return `${node}\0${checkId}`;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
