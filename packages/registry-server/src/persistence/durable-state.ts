import type { AclState, AclStore } from '../acl/acl-store.js';
import type { BlockingQueries } from '../http/blocking-query.js';
import {
  topicsOf,
  type Catalog,
  type CatalogChange,
  type PersistedCheck,
  type PersistedService,
} from '../catalog/catalog.js';
import type { PersistedNode } from '../catalog/external-nodes.js';
import type { KvEntry, KvStore } from '../kv/kv-store.js';
import type { SessionRecord, SessionStore } from '../session/session-store.js';
import type { LoadedState, StateJournal } from './state-journal.js';

/** The journal kinds of the registry's own state; other stores (ACL tokens) add their own. */
export const journalKinds = {
  service: 'service',
  check: 'check',
  kv: 'kv',
  node: 'node',
  acl: 'acl',
  topic: 'topic',
  /** A node other than this server's, whole: its services and checks (few; ESM's one or two). */
  catalogNode: 'catalog-node',
  session: 'session',
} as const;

/** A KV key as the journal keeps it: an entry (value in base64), or the index of its deletion. */
export type PersistedKv =
  | {
      readonly value: string;
      /** A decimal string above 2^53-1, which JSON numbers do not hold exactly. */
      readonly flags: number | string;
      readonly createIndex: number;
      readonly modifyIndex: number;
      /** Absent when 0, and in journals written before sessions. */
      readonly lockIndex?: number;
      /** The session holding the key's lock; absent when not locked. */
      readonly session?: string;
    }
  | { readonly deletedAt: number };

/**
 * Restores the registry's stores from what a data directory held, then journals every later
 * change of them: services, checks (also the ones timers change: TTL expiry, reaping), KV
 * entries and tombstones, ACL policies and tokens, the node id, the catalog and KV indexes and
 * the per-service indexes reads answer with. Values are read when the journal commits, so a
 * key changed many times in one turn is written once.
 * @throws Error (AclInputError, ...) when the stores are not empty or the state is malformed.
 * @example
 * const { journal, state } = StateJournal.open({ dir });
 * const nodeId = storedNodeId(state) ?? randomUUID();
 * attachDurableState(journal, state, { catalog, kv, sessions, blocking, nodeId, acl });
 */
export function attachDurableState(
  journal: StateJournal,
  state: LoadedState,
  stores: {
    readonly catalog: Catalog;
    readonly kv: KvStore;
    /** Sessions are kept whole; their TTLs start afresh on load, as Consul resets them. */
    readonly sessions: SessionStore;
    readonly nodeId: string;
    /** Its per-topic indexes (what a health read answers with) are kept too. */
    readonly blocking: BlockingQueries;
    /** ACL policies and tokens, kept whole under one key: they change rarely and are few. */
    readonly acl?: AclStore | undefined;
  },
): void {
  const { catalog, kv, sessions, nodeId, acl, blocking } = stores;
  if (acl !== undefined) {
    const saved = state.records.get(journalKinds.acl)?.get('state');
    if (saved !== undefined) acl.importState(saved as AclState);
  }
  catalog.restore(
    values<PersistedService>(state, journalKinds.service),
    values<PersistedCheck>(state, journalKinds.check),
    state.meta['catalogIndex'] ?? 1,
    values<PersistedNode>(state, journalKinds.catalogNode),
  );
  const entries: KvEntry[] = [];
  const tombstones: Array<[string, number]> = [];
  for (const [key, value] of state.records.get(journalKinds.kv) ?? []) {
    const kept = value as PersistedKv;
    if ('deletedAt' in kept) tombstones.push([key, kept.deletedAt]);
    else {
      const flags = typeof kept.flags === 'string' ? BigInt(kept.flags) : kept.flags;
      entries.push({ key, ...kept, flags, value: Buffer.from(kept.value, 'base64'), lockIndex: kept.lockIndex ?? 0 });
    }
  }
  kv.restore(entries, tombstones, state.meta['kvIndex'] ?? 1, state.meta['kvReapedIndex'] ?? 0);
  sessions.restore(values<SessionRecord>(state, journalKinds.session), state.meta['sessionIndex'] ?? 1);

  // The index of the last change of each service name, as registry-server notifies it, so that
  // a read of a service (even a deregistered one) answers no smaller an index after a restart.
  // BlockingQueries keeps them (and reaps those of names long gone).
  for (const [topic, index] of state.records.get(journalKinds.topic) ?? []) {
    if (typeof index !== 'number') continue;
    blocking.notify([topic], index);
  }

  const membership = new CheckMembership();
  for (const checkId of catalog.ids().checks) membership.set(checkId, catalog.persistedCheck(checkId)?.serviceId);

  journal.addSource({
    kind: journalKinds.service,
    keys: () => catalog.ids().services,
    read: (serviceId) => catalog.persistedService(serviceId),
    meta: () => ({
      catalogIndex: catalog.index,
      kvIndex: kv.index,
      kvReapedIndex: kv.reapedIndex,
      sessionIndex: sessions.index,
    }),
  });
  journal.addSource({
    kind: journalKinds.check,
    keys: () => catalog.ids().checks,
    read: (checkId) => catalog.persistedCheck(checkId),
  });
  journal.addSource({
    kind: journalKinds.catalogNode,
    keys: () => catalog.ids().nodes,
    read: (key) => catalog.persistedNode(key),
  });
  journal.addSource({
    kind: journalKinds.kv,
    keys: () => [...kv.list('').map((entry) => entry.key), ...kv.tombstones().map(([key]) => key)],
    read: (key) => persistKv(kv, key),
  });

  journal.addSource({
    kind: journalKinds.topic,
    keys: () => blocking.topicIndexEntries().map(([topic]) => topic),
    read: (topic) => blocking.recordedIndex(topic),
  });
  journal.addSource({ kind: journalKinds.node, keys: () => ['id'], read: () => nodeId });
  if (storedNodeId(state) !== nodeId) journal.touch(journalKinds.node, 'id');
  if (acl !== undefined) {
    journal.addSource({ kind: journalKinds.acl, keys: () => ['state'], read: () => acl.exportState() });
    acl.onChange(() => journal.touch(journalKinds.acl, 'state'));
  }

  catalog.onChange((change: CatalogChange) => {
    for (const topic of topicsOf(change)) journal.touch(journalKinds.topic, topic);
    if (change.type === 'node') {
      journal.touch(journalKinds.catalogNode, change.node);
      return;
    }
    if (change.type === 'check' || change.type === 'check-deregistered') {
      journal.touch(journalKinds.check, change.checkId);
      membership.set(change.checkId, catalog.persistedCheck(change.checkId)?.serviceId);
      return;
    }
    journal.touch(journalKinds.service, change.serviceId);
    // Checks the change dropped (with the service, or replaced) are found by what was journaled.
    const now = catalog.checkIdsOf(change.serviceId);
    for (const checkId of [...membership.of(change.serviceId), ...now]) {
      journal.touch(journalKinds.check, checkId);
      membership.set(checkId, catalog.persistedCheck(checkId)?.serviceId);
    }
  });
  kv.onChange(({ keys }) => {
    for (const key of keys) journal.touch(journalKinds.kv, key);
  });
  journal.addSource({
    kind: journalKinds.session,
    keys: () => sessions.list().map((s) => s.id),
    read: (id) => sessions.get(id),
  });
  sessions.onChange(({ session }) => journal.touch(journalKinds.session, session.id));
}

/** The node id a data directory keeps, so that the node keeps its ID across restarts. */
export function storedNodeId(state: LoadedState): string | undefined {
  const id = state.records.get(journalKinds.node)?.get('id');
  return typeof id === 'string' ? id : undefined;
}

function values<T>(state: LoadedState, kind: string): T[] {
  return [...(state.records.get(kind)?.values() ?? [])] as T[];
}

function persistKv(kv: KvStore, key: string): PersistedKv | undefined {
  const entry = kv.get(key);
  if (entry !== undefined) {
    const { flags, createIndex, modifyIndex, lockIndex, session } = entry;
    return {
      value: entry.value.toString('base64'),
      flags: typeof flags === 'bigint' ? flags.toString() : flags,
      createIndex,
      modifyIndex,
      ...(lockIndex === 0 ? {} : { lockIndex }),
      ...(session === undefined ? {} : { session }),
    };
  }
  const deletedAt = kv.tombstone(key);
  return deletedAt === undefined ? undefined : { deletedAt };
}

// Which service each live check belongs to, as last journaled, so that the checks a change
// removed without an event of their own are journaled as gone.
class CheckMembership {
  readonly #serviceOf = new Map<string, string>();
  readonly #byService = new Map<string, Set<string>>();

  of(serviceId: string): string[] {
    return [...(this.#byService.get(serviceId) ?? [])];
  }

  set(checkId: string, serviceId: string | undefined): void {
    const before = this.#serviceOf.get(checkId);
    if (before === serviceId) return;
    if (before !== undefined) {
      const set = this.#byService.get(before);
      set?.delete(checkId);
      if (set?.size === 0) this.#byService.delete(before);
    }
    if (serviceId === undefined) {
      this.#serviceOf.delete(checkId);
      return;
    }
    this.#serviceOf.set(checkId, serviceId);
    let set = this.#byService.get(serviceId);
    if (set === undefined) this.#byService.set(serviceId, (set = new Set()));
    set.add(checkId);
  }
}
