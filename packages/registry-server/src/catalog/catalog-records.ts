import type {
  CheckDefinition,
  CheckStatus,
  HttpCheckSpec,
  ScriptCheckSpec,
  ServiceDefinition,
} from './service-definition.js';

// The catalog's read side: the immutable records its reads hand out, projected from the
// catalog's mutable state, and the order they are listed in.

/** A registered service as the catalog holds it, with Consul's raft-like indexes. */
export interface ServiceRecord extends Omit<ServiceDefinition, 'checks'> {
  readonly createIndex: number;
  readonly modifyIndex: number;
}

/** A check, of a service or of the node, and its current state. */
export interface CheckRecord {
  readonly id: string;
  readonly name: string;
  readonly notes: string;
  readonly status: CheckStatus;
  /** The note of the last pass/warn/fail, or what the server wrote ("TTL expired", an HTTP answer). */
  readonly output: string;
  /** The service the check belongs to; empty for a check of the node. */
  readonly serviceId: string;
  readonly serviceName: string;
  readonly serviceTags: readonly string[];
  /**
   * `ttl`, `http`, or `maintenance` (the checks maintenance mode adds) for a check this server
   * runs; as registered for a check of another node.
   */
  readonly type: string;
  /** A TTL check's TTL; undefined for an HTTP check. */
  readonly ttlMs: number | undefined;
  /** An HTTP check's request; undefined for a TTL check. */
  readonly http: HttpCheckSpec | undefined;
  /** A script check's command; undefined for the others. */
  readonly script?: ScriptCheckSpec | undefined;
  readonly deregisterCriticalAfterMs: number | undefined;
  /** A check of another node: its `Definition` as registered. */
  readonly definition?: Readonly<Record<string, unknown>> | undefined;
  /** A check of another node: that node's name; undefined for this server's node. */
  readonly node?: string | undefined;
  readonly createIndex: number;
  readonly modifyIndex: number;
}

/** A node other than this server's, registered with `PUT /v1/catalog/register`. */
export interface NodeRecord {
  readonly name: string;
  /** Its UUID; empty when the registration gave none. */
  readonly id: string;
  readonly address: string;
  readonly taggedAddresses: Readonly<Record<string, string>>;
  readonly meta: Readonly<Record<string, string>>;
  readonly createIndex: number;
  readonly modifyIndex: number;
}

/** A service with its checks, as `GET /v1/health/service/:name` lists it. */
export interface HealthRecord {
  readonly service: ServiceRecord;
  readonly checks: readonly CheckRecord[];
  /** The other node the service is on, with that node's own checks; undefined for this server's node. */
  readonly node?: { readonly record: NodeRecord; readonly checks: readonly CheckRecord[] } | undefined;
}

/** What a service's state holds that its record shows. */
export interface ServiceFields {
  readonly def: ServiceDefinition;
  readonly createIndex: number;
  readonly modifyIndex: number;
}

/** What a check's state holds that its record shows. */
export interface CheckFields {
  readonly def: CheckDefinition;
  readonly status: CheckStatus;
  readonly output: string;
  readonly createIndex: number;
  readonly modifyIndex: number;
}

/** The record of a service's state. */
export function toServiceRecord(service: ServiceFields): ServiceRecord {
  const { id, name, address, port, tags, meta, weights } = service.def;
  return {
    id,
    name,
    address,
    port,
    tags,
    meta,
    weights,
    // A data directory written before the field existed has none.
    enableTagOverride: service.def.enableTagOverride === true,
    createIndex: service.createIndex,
    modifyIndex: service.modifyIndex,
  };
}

/** The record of a check's state, labelled with its service (undefined for a check of the node). */
export function toCheckRecord(check: CheckFields, service: ServiceDefinition | undefined): CheckRecord {
  return {
    id: check.def.id,
    name: check.def.name,
    notes: check.def.notes,
    status: check.status,
    output: check.output,
    serviceId: service?.id ?? '',
    serviceName: service?.name ?? '',
    serviceTags: service?.tags ?? [],
    type:
      check.def.maintenance === true
        ? 'maintenance'
        : check.def.script !== undefined
          ? 'script'
          : check.def.http === undefined
            ? 'ttl'
            : 'http',
    ttlMs: check.def.ttlMs,
    http: check.def.http,
    script: check.def.script,
    deregisterCriticalAfterMs: check.def.deregisterCriticalAfterMs,
    createIndex: check.createIndex,
    modifyIndex: check.modifyIndex,
  };
}

/** Byte order of ids and names, as Consul lists them (not locale order). */
export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
