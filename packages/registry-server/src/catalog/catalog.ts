import { ClosedError, Emitter, systemClock, type Clock, type Event } from '@trellis/core';
import {
  compare,
  toCheckRecord,
  toServiceRecord,
  type CheckRecord,
  type HealthRecord,
  type ServiceRecord,
} from './catalog-records.js';
import type { NodeDeregistration, NodeRegistration } from './catalog-registration.js';
import { CheckScheduler } from './check-scheduler.js';
import { ExternalNodes, type PersistedNode } from './external-nodes.js';
import {
  sameCheck,
  sameList,
  sameService,
  type CheckDefinition,
  type CheckStatus,
  type ServiceDefinition,
} from './service-definition.js';

/** What changed in the catalog; `index` is the catalog index after the change. */
export type CatalogChange =
  | {
      readonly type: 'registered';
      readonly index: number;
      readonly serviceId: string;
      readonly service: string;
      /** The service's former name, when re-registering its id renamed it. */
      readonly renamedFrom?: string;
      /**
       * The services (the empty name for the node) that checks of this change moved away from:
       * their reads changed too.
       */
      readonly movedFrom?: readonly string[];
    }
  | {
      readonly type: 'deregistered';
      readonly index: number;
      readonly serviceId: string;
      readonly service: string;
      /** `request` for a deregister call, `critical` when DeregisterCriticalServiceAfter reaped it. */
      readonly reason: 'request' | 'critical';
    }
  | {
      /** A check was added, or its status or output changed. */
      readonly type: 'check';
      readonly index: number;
      readonly checkId: string;
      /** The service the check belongs to; empty for a check of the node. */
      readonly serviceId: string;
      /** The name of the service the check belongs to; empty for a check of the node. */
      readonly service: string;
      readonly status: CheckStatus;
      readonly output: string;
      /**
       * The services (the empty name for the node) that checks of this change moved away from:
       * their reads changed too.
       */
      readonly movedFrom?: readonly string[];
    }
  | {
      /** A check was removed on its own (`/v1/agent/check/deregister`), not with its service. */
      readonly type: 'check-deregistered';
      readonly index: number;
      readonly checkId: string;
      readonly serviceId: string;
      readonly service: string;
    }
  | {
      /** Another node, its services or checks changed (`/v1/catalog/register`, `/deregister`). */
      readonly type: 'node';
      readonly index: number;
      /** The node's key: its name in lower case. */
      readonly node: string;
      /** The names of the services whose reads changed: on the node, or leaving it. */
      readonly services: readonly string[];
    };

/** What {@link Catalog.updateCheck} did: `unknown` for no such check, `not-ttl` for an HTTP check. */
export type CheckUpdateResult = 'updated' | 'unknown' | 'not-ttl';

/** A service as a data directory keeps it (see {@link Catalog.restore}). */
export interface PersistedService {
  readonly def: ServiceDefinition;
  readonly createIndex: number;
  readonly modifyIndex: number;
}

/** A check as a data directory keeps it: all of its state but its timers. */
export interface PersistedCheck {
  readonly def: CheckDefinition;
  /** Empty for a check of the node. */
  readonly serviceId: string;
  readonly status: CheckStatus;
  readonly output: string;
  readonly lastNote: string;
  readonly createIndex: number;
  readonly modifyIndex: number;
}

/**
 * The blocking-query topics a change touches: `service:<name>` of its service (the empty name for
 * a check of the node), of the former name when re-registering an id renamed it, and of the
 * services a check moved away from (a check id is unique on the node); for another
 * node, `node:<name>` and the services on it whose reads changed.
 */
export function topicsOf(change: CatalogChange): string[] {
  if (change.type === 'node') return [`node:${change.node}`, ...change.services.map((name) => `service:${name}`)];
  const topics = [`service:${change.service}`];
  if (change.type === 'registered' && change.renamedFrom !== undefined) topics.push(`service:${change.renamedFrom}`);
  if (change.type === 'registered' || change.type === 'check') {
    for (const name of change.movedFrom ?? []) if (!topics.includes(`service:${name}`)) topics.push(`service:${name}`);
  }
  return topics;
}

/** The reads of the other nodes of a catalog. */
export type OtherNodes = Pick<ExternalNodes, 'has' | 'nodes' | 'node' | 'servicesOf' | 'checksOf' | 'checks'>;

/** Options of {@link Catalog}. */
export interface CatalogOptions {
  /** Drives TTL expiry, HTTP check intervals and timeouts, and reaping; default {@link systemClock}. */
  readonly clock?: Clock;
}

interface ServiceState {
  def: ServiceDefinition;
  checkIds: Set<string>;
  createIndex: number;
  modifyIndex: number;
}

interface CheckState {
  def: CheckDefinition;
  /** Empty for a check of the node. */
  serviceId: string;
  status: CheckStatus;
  output: string;
  /** The note of the last status update; Consul repeats it in the "TTL expired" output. */
  lastNote: string;
  criticalSince: number | undefined;
  createIndex: number;
  modifyIndex: number;
}

/**
 * The registry's state: services, checks (of a service or of the node), and the catalog
 * index, a counter that moves on every change of state (never on a no-op, such as a TTL pass
 * that leaves status and output as they were) and starts at 1, never 0. TTL checks turn
 * critical with output "TTL expired" when no update comes within their TTL; HTTP checks are
 * run at their interval; a service whose check stays critical for its
 * DeregisterCriticalServiceAfter is removed. The timers live in a {@link CheckScheduler}, and
 * all timing goes through the clock.
 *
 * @example
 * const catalog = new Catalog({ clock: new ManualClock() });
 * catalog.register(decodeServiceDefinition('{"Name":"web","Check":{"TTL":"10s"}}'));
 * catalog.updateCheck('service:web', 'passing', '');
 * catalog.health('web'); // [{ service: {...}, checks: [{ status: 'passing', ... }] }]
 */
export class Catalog {
  readonly #clock: Clock;
  readonly #services = new Map<string, ServiceState>();
  readonly #checks = new Map<string, CheckState>();
  // Lookups that every health read needs, kept so that a read costs its answer's size, not the
  // catalog's: service ids by name, and the ids of the node's own checks.
  readonly #idsByName = new Map<string, Set<string>>();
  readonly #nodeCheckIds = new Set<string>();
  readonly #changed = new Emitter<CatalogChange>();
  readonly #schedule: CheckScheduler;
  readonly #external = new ExternalNodes();
  // Index 1 is the node itself (and its serfHealth check), present from the start.
  #index = 1;
  #closed: Promise<void> | undefined;

  /** Fires after every change of state, once the catalog is consistent again. */
  readonly onChange: Event<CatalogChange> = this.#changed.event;

  constructor(options: CatalogOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#schedule = new CheckScheduler(this.#clock, {
      ttlExpired: (checkId) => this.#ttlExpired(checkId),
      reapDue: (checkId) => {
        const check = this.#checks.get(checkId);
        if (check !== undefined) this.#remove(check.serviceId, 'critical');
      },
      runResult: (checkId, result) => {
        const check = this.#checks.get(checkId);
        if (check !== undefined) this.#setStatus(check, result.status, result.output);
      },
    });
  }

  /** The catalog index: at least 1, and larger after every change. */
  get index(): number {
    return this.#index;
  }

  /**
   * Adds a service, or replaces the one with the same id. A check that already exists keeps
   * its status and output (as in Consul) and has its TTL restarted; a new one starts with the
   * definition's status, or critical. Existing checks the definition leaves out are kept
   * unless `replaceExistingChecks` is set.
   * @throws ClosedError after {@link close}.
   */
  register(def: ServiceDefinition, options: { readonly replaceExistingChecks?: boolean } = {}): void {
    this.#assertOpen();
    let index: number | undefined;
    const bump = (): number => (index ??= this.#index + 1);

    const existing = this.#services.get(def.id);
    const service: ServiceState = existing ?? { def, checkIds: new Set(), createIndex: 0, modifyIndex: 0 };
    const serviceChanged = existing === undefined || !sameService(existing.def, def);
    const labelsChanged =
      existing !== undefined && (existing.def.name !== def.name || !sameList(existing.def.tags, def.tags));
    const renamedFrom = existing !== undefined && existing.def.name !== def.name ? existing.def.name : undefined;
    if (serviceChanged) {
      if (renamedFrom !== undefined) this.#unindexName(renamedFrom, def.id);
      service.def = def;
      service.modifyIndex = bump();
      if (existing === undefined) {
        service.createIndex = service.modifyIndex;
        this.#services.set(def.id, service);
      }
      this.#indexName(def.name, def.id);
    }

    const wanted = new Set(def.checks.map((c) => c.id));
    if (options.replaceExistingChecks === true) {
      for (const checkId of [...service.checkIds]) {
        // Maintenance is the operator's, not part of the service's definition.
        if (!wanted.has(checkId) && this.#checks.get(checkId)?.def.maintenance !== true) {
          this.#dropCheck(checkId);
          bump();
        }
      }
    }
    const started: CheckState[] = [];
    const movedFrom = new Set<string>();
    for (const checkDef of def.checks) {
      const check = this.#putCheck(checkDef, def.id, bump, labelsChanged, movedFrom);
      if (check !== undefined) started.push(check);
    }
    // Checks kept from an earlier registration show the service's new name and tags.
    if (labelsChanged) for (const checkId of service.checkIds) this.#touchCheck(checkId, bump);

    if (index !== undefined) {
      this.#index = index;
      this.#changed.emit({
        type: 'registered',
        index,
        serviceId: def.id,
        service: def.name,
        ...(renamedFrom === undefined ? {} : { renamedFrom }),
        ...(movedFrom.size === 0 ? {} : { movedFrom: [...movedFrom] }),
      });
    }
    // Only now: a first HTTP run may report at once, and must find the service in place.
    for (const check of started) this.#startHttp(check);
  }

  /**
   * Adds a check on its own, as `/v1/agent/check/register` does: to the service `serviceId`,
   * or to the node when it is undefined. A check with the same id is replaced, keeping its
   * status and output; a new one starts with the definition's status, or critical.
   * @returns false when `serviceId` names no service (nothing changes then).
   * @throws ClosedError after {@link close}.
   */
  registerCheck(def: CheckDefinition, serviceId: string | undefined): boolean {
    this.#assertOpen();
    if (serviceId !== undefined && !this.#services.has(serviceId)) return false;
    let index: number | undefined;
    const bump = (): number => (index ??= this.#index + 1);
    const movedFrom = new Set<string>();
    const check = this.#putCheck(def, serviceId ?? '', bump, false, movedFrom);
    if (index !== undefined) {
      this.#index = index;
      const current = this.#checks.get(def.id);
      if (current !== undefined) this.#emitCheck(current, [...movedFrom]);
    }
    if (check !== undefined) this.#startHttp(check);
    return true;
  }

  /**
   * Removes one check, as `/v1/agent/check/deregister/:id` does; its service stays.
   * @returns false when no check has that id.
   * @throws ClosedError after {@link close}.
   */
  deregisterCheck(checkId: string): boolean {
    this.#assertOpen();
    const check = this.#checks.get(checkId);
    if (check === undefined) return false;
    this.#dropCheck(checkId);
    const index = ++this.#index;
    this.#changed.emit({
      type: 'check-deregistered',
      index,
      checkId,
      serviceId: check.serviceId,
      service: this.#services.get(check.serviceId)?.def.name ?? '',
    });
    return true;
  }

  /**
   * Removes a service and its checks.
   * @returns false when no service has that id.
   * @throws ClosedError after {@link close}.
   */
  deregister(serviceId: string): boolean {
    this.#assertOpen();
    return this.#remove(serviceId, 'request');
  }

  /**
   * Sets a TTL check's status and output, as `/v1/agent/check/pass|warn|fail|update` do, and
   * restarts its TTL. The index moves only when status or output actually change. An HTTP
   * check is left alone: its own runs set its status.
   * @throws ClosedError after {@link close}.
   */
  updateCheck(checkId: string, status: CheckStatus, output: string): CheckUpdateResult {
    this.#assertOpen();
    const check = this.#checks.get(checkId);
    if (check === undefined) return 'unknown';
    if (check.def.ttlMs === undefined) return 'not-ttl';
    check.lastNote = output;
    this.#armTtl(check);
    this.#setStatus(check, status, output);
    return 'updated';
  }

  /**
   * Registers another node, a service on it and checks, as `PUT /v1/catalog/register` does: all
   * or nothing, at one new index, and only when something changed.
   * @throws NodeRegistrationError for a check of a service the node does not have;
   *   ClosedError after {@link close}.
   */
  registerNode(req: NodeRegistration): void {
    this.#assertOpen();
    const index = this.#index + 1;
    const change = this.#external.register(req, index);
    if (change === undefined) return;
    this.#index = index;
    this.#changed.emit({ type: 'node', index, ...change });
  }

  /**
   * Removes a service of another node, else a check, else the node, as `PUT /v1/catalog/deregister`
   * does; nothing matching is no change and no error, as in Consul.
   * @throws ClosedError after {@link close}.
   */
  deregisterNode(req: NodeDeregistration): void {
    this.#assertOpen();
    const change = this.#external.deregister(req);
    if (change === undefined) return;
    const index = ++this.#index;
    this.#changed.emit({ type: 'node', index, ...change });
  }

  /** The other nodes (registered with `/v1/catalog/register`), to read. */
  get otherNodes(): OtherNodes {
    return this.#external;
  }

  /** Another node as a data directory keeps it, by key (its name in lower case), or undefined. */
  persistedNode(key: string): PersistedNode | undefined {
    return this.#external.persisted(key);
  }

  /** Every service of this server's node, ordered by id. */
  services(): ServiceRecord[] {
    return [...this.#services.values()].map(toServiceRecord).sort((a, b) => compare(a.id, b.id));
  }

  /** The service with that id, if any. */
  service(serviceId: string): ServiceRecord | undefined {
    const service = this.#services.get(serviceId);
    return service === undefined ? undefined : toServiceRecord(service);
  }

  /** Every check, of the node and of services, ordered by id. */
  checks(): CheckRecord[] {
    return [...this.#checks.values()]
      .map((check) => toCheckRecord(check, this.#services.get(check.serviceId)?.def))
      .sort((a, b) => compare(a.id, b.id));
  }

  /** The checks of the node itself (not of a service), ordered by id. */
  nodeChecks(): CheckRecord[] {
    const records: CheckRecord[] = [];
    for (const checkId of this.#nodeCheckIds) {
      const check = this.#checks.get(checkId);
      if (check !== undefined) records.push(toCheckRecord(check, undefined));
    }
    return records.sort((a, b) => compare(a.id, b.id));
  }

  /** The check with that id, if any. */
  check(checkId: string): CheckRecord | undefined {
    const check = this.#checks.get(checkId);
    return check === undefined ? undefined : toCheckRecord(check, this.#services.get(check.serviceId)?.def);
  }

  /**
   * The instances of `serviceName` with their checks: this server's node's first, ordered by
   * service id, then the other nodes', ordered by node and id.
   */
  health(serviceName: string): HealthRecord[] {
    return [...this.#localHealth(serviceName), ...this.#external.health(serviceName)];
  }

  #localHealth(serviceName: string): HealthRecord[] {
    const records: HealthRecord[] = [];
    for (const serviceId of this.#idsByName.get(serviceName) ?? []) {
      const service = this.#services.get(serviceId);
      if (service === undefined) continue;
      const checks: CheckRecord[] = [];
      for (const checkId of service.checkIds) {
        const check = this.#checks.get(checkId);
        if (check !== undefined) checks.push(toCheckRecord(check, service.def));
      }
      checks.sort((a, b) => compare(a.id, b.id));
      records.push({ service: toServiceRecord(service), checks });
    }
    return records.sort((a, b) => compare(a.service.id, b.service.id));
  }

  /**
   * Every service name with the union of its instances' tags (on every node), sorted, as
   * Consul's catalog lists them.
   */
  serviceTags(): Map<string, string[]> {
    const tags = new Map<string, Set<string>>();
    for (const service of this.#services.values()) {
      let set = tags.get(service.def.name);
      if (set === undefined) tags.set(service.def.name, (set = new Set()));
      for (const tag of service.def.tags) set.add(tag);
    }
    this.#external.serviceTags(tags);
    return new Map([...tags].sort(([a], [b]) => compare(a, b)).map(([name, set]) => [name, [...set].sort(compare)]));
  }

  /** The service with that id as a data directory keeps it, or undefined. */
  persistedService(serviceId: string): PersistedService | undefined {
    const service = this.#services.get(serviceId);
    if (service === undefined) return undefined;
    return { def: service.def, createIndex: service.createIndex, modifyIndex: service.modifyIndex };
  }

  /** The check with that id as a data directory keeps it, or undefined. */
  persistedCheck(checkId: string): PersistedCheck | undefined {
    const c = this.#checks.get(checkId);
    if (c === undefined) return undefined;
    const { def, serviceId, status, output, lastNote, createIndex, modifyIndex } = c;
    return { def, serviceId, status, output, lastNote, createIndex, modifyIndex };
  }

  /** The ids of every service and of every check (of services and of the node), and the keys of the other nodes. */
  ids(): { readonly services: string[]; readonly checks: string[]; readonly nodes: string[] } {
    return { services: [...this.#services.keys()], checks: [...this.#checks.keys()], nodes: this.#external.keys() };
  }

  /** The ids of the checks of one service; empty for an unknown one. */
  checkIdsOf(serviceId: string): string[] {
    return [...(this.#services.get(serviceId)?.checkIds ?? [])];
  }

  /**
   * Loads state kept in a data directory into this empty catalog, without emitting changes.
   * The index becomes the largest of `index` and every restored index, so it never goes back.
   * TTLs and DeregisterCriticalServiceAfter count from now (a full TTL to heartbeat again), and
   * HTTP checks start running. A check whose service is missing is dropped.
   * @throws Error when the catalog already holds something; ClosedError after {@link close}.
   * @example
   * catalog.restore([persistedWeb], [persistedWebCheck], 42);
   */
  restore(
    services: Iterable<PersistedService>,
    checks: Iterable<PersistedCheck>,
    index: number,
    otherNodes: Iterable<PersistedNode> = [],
  ): void {
    this.#assertOpen();
    if (this.#services.size > 0 || this.#checks.size > 0 || this.#external.keys().length > 0) {
      throw new Error('Catalog.restore: the catalog is not empty');
    }
    let top = Math.max(this.#index, index);
    for (const node of otherNodes) top = Math.max(top, this.#external.restore(node));
    for (const { def, createIndex, modifyIndex } of services) {
      this.#services.set(def.id, { def, checkIds: new Set(), createIndex, modifyIndex });
      this.#indexName(def.name, def.id);
      top = Math.max(top, modifyIndex);
    }
    const now = this.#clock.now();
    const restored: CheckState[] = [];
    for (const p of checks) {
      const service = this.#services.get(p.serviceId);
      if (p.serviceId !== '' && service === undefined) continue;
      const check: CheckState = {
        def: p.def,
        serviceId: p.serviceId,
        status: p.status,
        output: p.output,
        lastNote: p.lastNote,
        criticalSince: p.status === 'critical' ? now : undefined,
        createIndex: p.createIndex,
        modifyIndex: p.modifyIndex,
      };
      this.#checks.set(p.def.id, check);
      if (service === undefined) this.#nodeCheckIds.add(p.def.id);
      else service.checkIds.add(p.def.id);
      top = Math.max(top, p.modifyIndex);
      restored.push(check);
    }
    this.#index = top;
    for (const check of restored) {
      this.#armTtl(check);
      this.#armReaper(check);
      this.#startHttp(check);
    }
  }

  /**
   * Cancels every TTL and reaping timer and stops every HTTP check; the catalog answers no more
   * changes. Resolves once the HTTP checks' requests in flight have wound down. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed === undefined) {
      this.#closed = this.#schedule.close();
      this.#changed.clear();
    }
    return this.#closed;
  }

  #assertOpen(): void {
    if (this.#closed !== undefined) throw new ClosedError('registry catalog');
  }

  #remove(serviceId: string, reason: 'request' | 'critical'): boolean {
    const service = this.#services.get(serviceId);
    if (service === undefined) return false;
    for (const checkId of service.checkIds) this.#dropCheck(checkId);
    this.#services.delete(serviceId);
    this.#unindexName(service.def.name, serviceId);
    const index = ++this.#index;
    this.#changed.emit({ type: 'deregistered', index, serviceId, service: service.def.name, reason });
    return true;
  }

  // Creates or updates one check under `serviceId` ('' for the node), without emitting; the name
  // of a service it moves away from goes into `movedFrom`. Returns the check when its HTTP run
  // must be (re)started once the change is in place.
  #putCheck(
    checkDef: CheckDefinition,
    serviceId: string,
    bump: () => number,
    labelsChanged: boolean,
    movedFrom: Set<string>,
  ): CheckState | undefined {
    const check = this.#checks.get(checkDef.id);
    if (check === undefined) {
      const status = checkDef.status ?? 'critical';
      const created: CheckState = {
        def: checkDef,
        serviceId,
        status,
        output: '',
        lastNote: '',
        criticalSince: status === 'critical' ? this.#clock.now() : undefined,
        createIndex: bump(),
        modifyIndex: bump(),
      };
      this.#checks.set(checkDef.id, created);
      this.#services.get(serviceId)?.checkIds.add(checkDef.id);
      if (serviceId === '') this.#nodeCheckIds.add(checkDef.id);
      this.#armTtl(created);
      this.#armReaper(created);
      return created.def.http === undefined && created.def.script === undefined ? undefined : created;
    }
    // A check id is unique on the node: registering it under another service moves it.
    if (check.serviceId !== serviceId) {
      movedFrom.add(this.#services.get(check.serviceId)?.def.name ?? '');
      this.#services.get(check.serviceId)?.checkIds.delete(checkDef.id);
      this.#services.get(serviceId)?.checkIds.add(checkDef.id);
      if (serviceId === '') this.#nodeCheckIds.add(checkDef.id);
      else this.#nodeCheckIds.delete(checkDef.id);
    }
    const changed = !sameCheck(check.def, checkDef);
    if (check.serviceId !== serviceId || labelsChanged || changed) check.modifyIndex = bump();
    check.def = checkDef;
    check.serviceId = serviceId;
    this.#armTtl(check);
    this.#armReaper(check);
    // A running HTTP check with the same request keeps its schedule.
    if (checkDef.http === undefined) this.#schedule.runHttp(checkDef.id, undefined);
    if (checkDef.script === undefined) this.#schedule.runScript(checkDef.id, undefined);
    if (checkDef.http === undefined && checkDef.script === undefined) return undefined;
    return changed || !this.#schedule.runs(checkDef.id) ? check : undefined;
  }

  #startHttp(check: CheckState): void {
    // A listener of the change may have removed the check already.
    if (this.#checks.get(check.def.id) !== check) return;
    this.#schedule.runHttp(check.def.id, check.def.http);
    this.#schedule.runScript(check.def.id, check.def.script);
  }

  #emitCheck(check: CheckState, movedFrom: readonly string[] = []): void {
    this.#changed.emit({
      type: 'check',
      index: this.#index,
      checkId: check.def.id,
      serviceId: check.serviceId,
      service: this.#services.get(check.serviceId)?.def.name ?? '',
      status: check.status,
      output: check.output,
      ...(movedFrom.length === 0 ? {} : { movedFrom }),
    });
  }

  #dropCheck(checkId: string): void {
    const check = this.#checks.get(checkId);
    if (check === undefined) return;
    this.#schedule.drop(checkId);
    this.#checks.delete(checkId);
    this.#services.get(check.serviceId)?.checkIds.delete(checkId);
    this.#nodeCheckIds.delete(checkId);
  }

  #indexName(name: string, serviceId: string): void {
    let ids = this.#idsByName.get(name);
    if (ids === undefined) this.#idsByName.set(name, (ids = new Set()));
    ids.add(serviceId);
  }

  #unindexName(name: string, serviceId: string): void {
    const ids = this.#idsByName.get(name);
    ids?.delete(serviceId);
    if (ids?.size === 0) this.#idsByName.delete(name);
  }

  #touchCheck(checkId: string, bump: () => number): void {
    const check = this.#checks.get(checkId);
    if (check !== undefined) check.modifyIndex = bump();
  }

  #setStatus(check: CheckState, status: CheckStatus, output: string): void {
    if (check.status === status && check.output === output) return;
    const wasCritical = check.status === 'critical';
    check.status = status;
    check.output = output;
    check.modifyIndex = ++this.#index;
    if (status === 'critical' && !wasCritical) check.criticalSince = this.#clock.now();
    if (status !== 'critical') check.criticalSince = undefined;
    this.#armReaper(check);
    this.#emitCheck(check);
  }

  #armTtl(check: CheckState): void {
    this.#schedule.armTtl(check.def.id, check.def.ttlMs);
  }

  #ttlExpired(checkId: string): void {
    const check = this.#checks.get(checkId);
    if (check === undefined) return;
    // Consul's wording, so that tools matching on it keep working.
    const output =
      check.lastNote === '' ? 'TTL expired' : `TTL expired (last output before timeout follows): ${check.lastNote}`;
    this.#setStatus(check, 'critical', output);
  }

  // Keeps a timer exactly while the check is critical and its service asks to be reaped.
  #armReaper(check: CheckState): void {
    const after = check.def.deregisterCriticalAfterMs;
    // A check of the node has no service to remove.
    const due =
      after === undefined || check.criticalSince === undefined || !this.#services.has(check.serviceId)
        ? undefined
        : check.criticalSince + after;
    this.#schedule.armReap(check.def.id, due);
  }
}
