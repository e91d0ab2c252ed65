import { TrellisError } from '@trellis/core';
import type { ExternalCheckDefinition, NodeDeregistration, NodeRegistration } from './catalog-registration.js';
import { compare, toServiceRecord, type CheckRecord, type HealthRecord, type NodeRecord } from './catalog-records.js';
import { sameList, sameService, type ServiceDefinition } from './service-definition.js';

// Nodes other than the server's own, as PUT /v1/catalog/register puts them in the catalog: no
// agent runs them, so their checks hold whatever status the registrant last wrote, and nothing
// here times them out or reaps them.

/** A node of the catalog that is not this server's, as a data directory keeps it. */
export interface PersistedNode {
  readonly name: string;
  readonly id: string;
  readonly address: string;
  readonly taggedAddresses: Readonly<Record<string, string>>;
  readonly meta: Readonly<Record<string, string>>;
  readonly createIndex: number;
  readonly modifyIndex: number;
  readonly services: readonly {
    readonly def: ServiceDefinition;
    readonly createIndex: number;
    readonly modifyIndex: number;
  }[];
  readonly checks: readonly {
    readonly def: ExternalCheckDefinition;
    readonly createIndex: number;
    readonly modifyIndex: number;
  }[];
}

/** What one registration or deregistration changed: the service names whose reads it touches. */
export interface NodeChange {
  /** The node's key (its name in lower case: node names match in any case, as in Consul). */
  readonly node: string;
  readonly services: readonly string[];
}

interface Indexed<T> {
  def: T;
  createIndex: number;
  modifyIndex: number;
}

interface NodeState {
  name: string;
  id: string;
  address: string;
  taggedAddresses: Readonly<Record<string, string>>;
  meta: Readonly<Record<string, string>>;
  createIndex: number;
  modifyIndex: number;
  services: Map<string, Indexed<ServiceDefinition>>;
  checks: Map<string, Indexed<ExternalCheckDefinition>>;
}

/**
 * A registration the catalog refuses, with Consul's text; `field` names the part of the body.
 * Code `NODE_REGISTRATION_REFUSED`.
 */
export class NodeRegistrationError extends TrellisError {
  readonly field: string;

  constructor(field: string, message: string) {
    super('NODE_REGISTRATION_REFUSED', message);
    this.field = field;
  }
}

/**
 * The other nodes of the catalog, their services and checks, by node name in any case. It
 * moves no index itself: {@link register} and {@link deregister} take the index the change is
 * made at, and say what changed, so that the catalog emits one change for it.
 *
 * @example
 * const nodes = new ExternalNodes();
 * nodes.register(decodeNodeRegistration(body), catalogIndex + 1); // { node: 'db-1', services: ['db'] }
 */
export class ExternalNodes {
  readonly #nodes = new Map<string, NodeState>();

  /** The keys of every node. */
  keys(): string[] {
    return [...this.#nodes.keys()];
  }

  /** Whether a node of that name (in any case) is registered. */
  has(name: string): boolean {
    return this.#nodes.has(name.toLowerCase());
  }

  /**
   * Applies a registration at `index`, all or nothing.
   * @returns what changed, or undefined when the registration changed nothing.
   * @throws NodeRegistrationError for a check of a service the node does not have.
   */
  register(req: NodeRegistration, index: number): NodeChange | undefined {
    const key = req.node.toLowerCase();
    const existing = this.#nodes.get(key);
    // Validate everything first: Consul applies a registration as one transaction.
    for (const check of req.checks) {
      if (check.serviceId === '' || check.serviceId === req.service?.id) continue;
      if (existing?.services.has(check.serviceId) !== true) {
        throw new NodeRegistrationError(
          'Checks',
          `Unknown service ID '${check.serviceId}' for check ID '${check.id}': register the service first`,
        );
      }
    }
    const touched = new Set<string>();
    let nodeChanged = false;
    const node: NodeState = existing ?? {
      name: req.node,
      id: req.id,
      address: req.address,
      taggedAddresses: req.taggedAddresses,
      meta: req.meta,
      createIndex: index,
      modifyIndex: index,
      services: new Map(),
      checks: new Map(),
    };
    if (existing === undefined) {
      nodeChanged = true;
      this.#nodes.set(key, node);
    } else if (!req.skipNodeUpdate) {
      const id = req.id === '' ? existing.id : req.id;
      if (
        existing.name !== req.node ||
        existing.id !== id ||
        existing.address !== req.address ||
        !sameMap(existing.taggedAddresses, req.taggedAddresses) ||
        !sameMap(existing.meta, req.meta)
      ) {
        Object.assign(existing, {
          name: req.node,
          id,
          address: req.address,
          taggedAddresses: req.taggedAddresses,
          meta: req.meta,
          modifyIndex: index,
        });
        nodeChanged = true;
      }
    }

    const service = req.service;
    if (service !== undefined) {
      const before = node.services.get(service.id);
      if (before === undefined || !sameService(before.def, service)) {
        node.services.set(service.id, { def: service, createIndex: before?.createIndex ?? index, modifyIndex: index });
        touched.add(service.name);
        if (before !== undefined && before.def.name !== service.name) touched.add(before.def.name);
        // Its checks show the service's name and tags.
        if (before !== undefined && (before.def.name !== service.name || !sameList(before.def.tags, service.tags))) {
          for (const check of node.checks.values()) if (check.def.serviceId === service.id) check.modifyIndex = index;
        }
      }
    }

    for (const check of req.checks) {
      const before = node.checks.get(check.id);
      if (before !== undefined && sameExternalCheck(before.def, check)) continue;
      node.checks.set(check.id, { def: check, createIndex: before?.createIndex ?? index, modifyIndex: index });
      // A check that moves between services touches the reads of both.
      for (const def of before === undefined ? [check] : [before.def, check]) {
        if (def.serviceId === '') nodeChanged = true;
        else touched.add(node.services.get(def.serviceId)?.def.name ?? '');
      }
    }
    if (!nodeChanged && touched.size === 0) return undefined;
    return this.#change(key, node, nodeChanged, touched);
  }

  /**
   * Removes a service of a node (with its checks), else one check, else the node with
   * everything on it, as Consul's DeregisterRequest does.
   * @returns what changed, or undefined when nothing matched (not an error, as in Consul).
   */
  deregister(req: NodeDeregistration): NodeChange | undefined {
    const key = req.node.toLowerCase();
    const node = this.#nodes.get(key);
    if (node === undefined) return undefined;
    if (req.serviceId !== '') {
      const service = node.services.get(req.serviceId);
      if (service === undefined) return undefined;
      node.services.delete(req.serviceId);
      for (const [checkId, check] of node.checks)
        if (check.def.serviceId === req.serviceId) node.checks.delete(checkId);
      return this.#change(key, node, false, new Set([service.def.name]));
    }
    if (req.checkId !== '') {
      const check = node.checks.get(req.checkId);
      if (check === undefined) return undefined;
      node.checks.delete(req.checkId);
      const serviceName = node.services.get(check.def.serviceId)?.def.name;
      return this.#change(
        key,
        node,
        serviceName === undefined,
        new Set(serviceName === undefined ? [] : [serviceName]),
      );
    }
    this.#nodes.delete(key);
    return this.#change(key, node, true, new Set());
  }

  /** Every node, ordered by name. */
  nodes(): NodeRecord[] {
    return [...this.#nodes.values()].map(toNodeRecord).sort((a, b) => compare(a.name, b.name));
  }

  /** The node of that name (in any case), or undefined. */
  node(name: string): NodeRecord | undefined {
    const node = this.#nodes.get(name.toLowerCase());
    return node === undefined ? undefined : toNodeRecord(node);
  }

  /** The services of a node as records, ordered by id; empty for an unknown node. */
  servicesOf(name: string): HealthRecord[] {
    const node = this.#nodes.get(name.toLowerCase());
    if (node === undefined) return [];
    return [...node.services.keys()].sort(compare).flatMap((id) => this.#health(node, id));
  }

  /** The checks of a node, its own and its services', ordered by id; empty for an unknown node. */
  checksOf(name: string): CheckRecord[] {
    const node = this.#nodes.get(name.toLowerCase());
    if (node === undefined) return [];
    return [...node.checks.values()].map((check) => checkRecord(node, check)).sort((a, b) => compare(a.id, b.id));
  }

  /** The instances of a service on every node, with their node and its own checks, ordered by node, then id. */
  health(serviceName: string): HealthRecord[] {
    const records: HealthRecord[] = [];
    for (const node of [...this.#nodes.values()].sort((a, b) => compare(a.name, b.name))) {
      const ids = [...node.services.values()].filter((s) => s.def.name === serviceName).map((s) => s.def.id);
      for (const id of ids.sort(compare)) records.push(...this.#health(node, id));
    }
    return records;
  }

  /** Every check of every node, ordered by node, then id. */
  checks(): CheckRecord[] {
    return this.nodes().flatMap((node) => this.checksOf(node.name));
  }

  /** Every service name with its instances' tags. */
  serviceTags(into: Map<string, Set<string>>): void {
    for (const node of this.#nodes.values()) {
      for (const { def } of node.services.values()) {
        let set = into.get(def.name);
        if (set === undefined) into.set(def.name, (set = new Set()));
        for (const tag of def.tags) set.add(tag);
      }
    }
  }

  /** The node of that key as a data directory keeps it, or undefined. */
  persisted(key: string): PersistedNode | undefined {
    const node = this.#nodes.get(key);
    if (node === undefined) return undefined;
    const { name, id, address, taggedAddresses, meta, createIndex, modifyIndex } = node;
    return {
      name,
      id,
      address,
      taggedAddresses,
      meta,
      createIndex,
      modifyIndex,
      services: [...node.services.values()].map((s) => ({ ...s })),
      checks: [...node.checks.values()].map((c) => ({ ...c })),
    };
  }

  /** Loads a kept node; the largest index it holds is returned. */
  restore(p: PersistedNode): number {
    const services = new Map(
      p.services.map((s) => [
        s.def.id,
        { ...s, def: { ...s.def, enableTagOverride: s.def.enableTagOverride === true } },
      ]),
    );
    const checks = new Map(p.checks.map((c) => [c.def.id, { ...c }]));
    this.#nodes.set(p.name.toLowerCase(), { ...p, services, checks });
    return Math.max(p.modifyIndex, ...p.services.map((s) => s.modifyIndex), ...p.checks.map((c) => c.modifyIndex));
  }

  #health(node: NodeState, serviceId: string): HealthRecord[] {
    const service = node.services.get(serviceId);
    if (service === undefined) return [];
    const own: CheckRecord[] = [];
    const ofNode: CheckRecord[] = [];
    for (const check of node.checks.values()) {
      if (check.def.serviceId === serviceId) own.push(checkRecord(node, check));
      else if (check.def.serviceId === '') ofNode.push(checkRecord(node, check));
    }
    return [
      {
        service: toServiceRecord(service),
        checks: own.sort((a, b) => compare(a.id, b.id)),
        node: { record: toNodeRecord(node), checks: ofNode.sort((a, b) => compare(a.id, b.id)) },
      },
    ];
  }

  // A change of the node itself (its address, metadata or own checks) touches every service on it.
  #change(key: string, node: NodeState, nodeChanged: boolean, touched: Set<string>): NodeChange {
    if (nodeChanged) for (const { def } of node.services.values()) touched.add(def.name);
    touched.delete('');
    return { node: key, services: [...touched].sort(compare) };
  }
}

function toNodeRecord(node: NodeState): NodeRecord {
  const { name, id, address, taggedAddresses, meta, createIndex, modifyIndex } = node;
  return { name, id, address, taggedAddresses, meta, createIndex, modifyIndex };
}

function checkRecord(node: NodeState, check: Indexed<ExternalCheckDefinition>): CheckRecord {
  const service = check.def.serviceId === '' ? undefined : node.services.get(check.def.serviceId)?.def;
  return {
    id: check.def.id,
    name: check.def.name,
    notes: check.def.notes,
    status: check.def.status,
    output: check.def.output,
    serviceId: service?.id ?? '',
    serviceName: service?.name ?? '',
    serviceTags: service?.tags ?? [],
    type: check.def.type,
    ttlMs: undefined,
    http: undefined,
    deregisterCriticalAfterMs: undefined,
    definition: check.def.definition,
    node: node.name,
    createIndex: check.createIndex,
    modifyIndex: check.modifyIndex,
  };
}

function sameExternalCheck(a: ExternalCheckDefinition, b: ExternalCheckDefinition): boolean {
  return (
    a.name === b.name &&
    a.status === b.status &&
    a.notes === b.notes &&
    a.output === b.output &&
    a.serviceId === b.serviceId &&
    a.type === b.type &&
    JSON.stringify(a.definition) === JSON.stringify(b.definition)
  );
}

function sameMap(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}
