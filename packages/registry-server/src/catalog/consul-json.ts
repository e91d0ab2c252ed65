import { createHash } from 'node:crypto';
import { ConfigError } from '@trellis/core';
import type { CheckRecord, HealthRecord, NodeRecord, ServiceRecord } from './catalog-records.js';

// The JSON shapes of Consul's HTTP API, with its field names. Every list is a list and every
// object the Go client decodes (Definition, Weights, Proxy, ...) an object, never null.

/** The one node this server stands for, as Consul describes an agent's node. */
export interface NodeInfo {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly datacenter: string;
  /** The node's metadata, as `?node-meta=key:value` filters match it. */
  readonly meta: Readonly<Record<string, string>>;
  /** Set for another node: its own tagged addresses and indexes (this server's node is at index 1). */
  readonly other?: Pick<NodeRecord, 'taggedAddresses' | 'createIndex' | 'modifyIndex'> | undefined;
}

/** Another node of the catalog, described like this server's own, in `datacenter`. */
export function otherNodeInfo(record: NodeRecord, datacenter: string): NodeInfo {
  const { name, id, address, meta, taggedAddresses, createIndex, modifyIndex } = record;
  return { name, id, address, meta, datacenter, other: { taggedAddresses, createIndex, modifyIndex } };
}

/**
 * The `consul` service that a Consul server has on its node (port 8300), listed by the catalog
 * and health reads but not by the agent's, as in Consul.
 */
export function consulServiceRecord(): ServiceRecord {
  return {
    id: 'consul',
    name: 'consul',
    address: '',
    port: serverRpcPort,
    tags: [],
    meta: {
      non_voter: 'false',
      raft_version: '3',
      read_replica: 'false',
      serf_protocol_current: '2',
      serf_protocol_max: '5',
      serf_protocol_min: '1',
      version: consulVersion,
    },
    weights: { passing: 1, warning: 1 },
    enableTagOverride: false,
    createIndex: nodeIndex,
    modifyIndex: nodeIndex,
  };
}

/** The Consul version this server answers as, for tools that read `/v1/agent/self`. */
export const consulVersion = '1.17.0';

// The node and its serfHealth check exist from the start, at catalog index 1.
const nodeIndex = 1;

/** Consul's server RPC port, which /v1/status/* name the leader by. */
export const serverRpcPort = 8300;

const metaKeyPattern = /^[a-zA-Z0-9_-]+$/;

/**
 * The node metadata the server stands for: Consul's `consul-network-segment: ""`, which every
 * agent has, plus `extra`.
 * @throws ConfigError naming `nodeMeta` for a key Consul would refuse, or a value not a string.
 * @example
 * nodeMeta({ rack: 'r1' }); // { 'consul-network-segment': '', rack: 'r1' }
 */
export function nodeMeta(extra: Readonly<Record<string, string>> | undefined): Readonly<Record<string, string>> {
  for (const [key, value] of Object.entries(extra ?? {})) {
    if (!metaKeyPattern.test(key) || key.startsWith('consul-')) {
      throw new ConfigError(
        'nodeMeta',
        `key "${key}" must use letters, digits, "-" and "_", and not start with "consul-"`,
      );
    }
    if (typeof value !== 'string') throw new ConfigError('nodeMeta', `value of "${key}" must be a string`);
  }
  return { 'consul-network-segment': '', ...extra };
}

/**
 * One entry of `GET /v1/health/service/:name`, with Consul's field names: the node, the
 * service, and the checks: the node's own first (for this server's node "serfHealth", always
 * passing, and `nodeChecks`; for another, its own checks as registered; ordered by id), then
 * the service's, as in Consul.
 */
export function healthEntryJson(
  local: NodeInfo,
  record: HealthRecord,
  nodeChecks: readonly CheckRecord[] = [],
): Record<string, unknown> {
  const node = record.node === undefined ? local : otherNodeInfo(record.node.record, local.datacenter);
  const own = record.node === undefined ? [serfHealthJson(node)] : [];
  const ofNode = [...own, ...(record.node?.checks ?? nodeChecks).map((check) => checkJson(node, check))].sort((a, b) =>
    String(a['CheckID']) < String(b['CheckID']) ? -1 : 1,
  );
  return {
    Node: nodeJson(node),
    Service: serviceJson(record.service),
    Checks: [...ofNode, ...record.checks.map((check) => checkJson(node, check))],
  };
}

/** The node, as `/v1/catalog/nodes` lists it and health entries embed it. */
export function nodeJson(node: NodeInfo): Record<string, unknown> {
  return {
    ID: node.id,
    Node: node.name,
    Address: node.address,
    Datacenter: node.datacenter,
    TaggedAddresses: taggedAddresses(node),
    Meta: { ...node.meta },
    CreateIndex: node.other?.createIndex ?? nodeIndex,
    ModifyIndex: node.other?.modifyIndex ?? nodeIndex,
  };
}

/** A service as the catalog holds it (`Service` of a health entry, `Services` of catalog/node). */
export function serviceJson(service: ServiceRecord): Record<string, unknown> {
  return {
    ID: service.id,
    Service: service.name,
    Tags: service.tags,
    Address: service.address,
    Meta: service.meta,
    Port: service.port,
    Weights: { Passing: service.weights.passing, Warning: service.weights.warning },
    EnableTagOverride: service.enableTagOverride,
    Proxy: { Mode: '', MeshGateway: {}, Expose: {} },
    Connect: {},
    CreateIndex: service.createIndex,
    ModifyIndex: service.modifyIndex,
  };
}

/** A service as the agent lists it (`/v1/agent/services`, `/v1/agent/service/:id`). */
export function agentServiceJson(node: NodeInfo, service: ServiceRecord): Record<string, unknown> {
  return {
    ID: service.id,
    Service: service.name,
    Tags: service.tags,
    Meta: service.meta,
    Port: service.port,
    Address: service.address,
    Weights: { Passing: service.weights.passing, Warning: service.weights.warning },
    EnableTagOverride: service.enableTagOverride,
    Datacenter: node.datacenter,
  };
}

/**
 * `/v1/agent/service/:id`: the agent's view plus `ContentHash`, which changes whenever the
 * service does (clients block on it with `?hash=`).
 */
export function agentServiceWithHashJson(node: NodeInfo, service: ServiceRecord): Record<string, unknown> {
  const json = agentServiceJson(node, service);
  const hash = createHash('sha256').update(JSON.stringify(json)).digest('hex').slice(0, 16);
  return { ...json, ContentHash: hash };
}

/** One entry of `/v1/catalog/service/:name`: node and service flattened, as Consul does. */
export function catalogServiceJson(node: NodeInfo, service: ServiceRecord): Record<string, unknown> {
  return {
    ID: node.id,
    Node: node.name,
    Address: node.address,
    Datacenter: node.datacenter,
    TaggedAddresses: taggedAddresses(node),
    NodeMeta: { ...node.meta },
    ServiceKind: '',
    ServiceID: service.id,
    ServiceName: service.name,
    ServiceAddress: service.address,
    ServiceTags: service.tags,
    ServiceMeta: service.meta,
    ServicePort: service.port,
    ServiceWeights: { Passing: service.weights.passing, Warning: service.weights.warning },
    ServiceEnableTagOverride: service.enableTagOverride,
    ServiceProxy: { Mode: '', MeshGateway: {}, Expose: {} },
    ServiceConnect: {},
    CreateIndex: service.createIndex,
    ModifyIndex: service.modifyIndex,
  };
}

/** A check with Consul's field names, as health endpoints and `/v1/agent/checks` list it. */
export function checkJson(node: NodeInfo, check: CheckRecord): Record<string, unknown> {
  const http = check.http;
  // What runs at an interval: an HTTP request or a script.
  const every = http ?? check.script;
  const definition: Record<string, unknown> = {};
  if (http !== undefined) {
    definition['HTTP'] = http.url;
    definition['Header'] = http.header;
    definition['Method'] = http.method;
    definition['Body'] = http.body;
    definition['TLSSkipVerify'] = http.tlsSkipVerify;
    definition['DisableRedirects'] = http.disableRedirects ?? false;
    definition['Interval'] = formatGoDuration(http.intervalMs);
    definition['Timeout'] = formatGoDuration(http.timeoutMs);
  }
  if (check.script !== undefined) {
    definition['ScriptArgs'] = check.script.args;
    definition['Interval'] = formatGoDuration(check.script.intervalMs);
    definition['Timeout'] = formatGoDuration(check.script.timeoutMs);
  }
  // Consul omits zero durations here: the Go client cannot parse "" as one.
  if (check.ttlMs !== undefined) definition['TTL'] = formatGoDuration(check.ttlMs);
  if (check.deregisterCriticalAfterMs !== undefined) {
    definition['DeregisterCriticalServiceAfter'] = formatGoDuration(check.deregisterCriticalAfterMs);
  }
  return {
    Node: check.node ?? node.name,
    CheckID: check.id,
    Name: check.name,
    Status: check.status,
    Notes: check.notes,
    Output: check.output,
    ServiceID: check.serviceId,
    ServiceName: check.serviceName,
    ServiceTags: check.serviceTags,
    Type: check.type,
    Interval: every === undefined ? '' : formatGoDuration(every.intervalMs),
    Timeout: every === undefined ? '' : formatGoDuration(every.timeoutMs),
    ExposedPort: 0,
    Definition: check.definition ?? definition,
    CreateIndex: check.createIndex,
    ModifyIndex: check.modifyIndex,
  };
}

/** The node's "serfHealth" check, which a Consul agent always has; here always passing. */
export function serfHealthJson(node: NodeInfo): Record<string, unknown> {
  return {
    Node: node.name,
    CheckID: 'serfHealth',
    Name: 'Serf Health Status',
    Status: 'passing',
    Notes: '',
    Output: 'Agent alive and reachable',
    ServiceID: '',
    ServiceName: '',
    ServiceTags: [],
    Type: '',
    Interval: '',
    Timeout: '',
    ExposedPort: 0,
    Definition: {},
    CreateIndex: nodeIndex,
    ModifyIndex: nodeIndex,
  };
}

/** Where `/v1/status/leader` and `/v1/status/peers` say the (only) server is. */
export function serverAddress(node: NodeInfo): string {
  return `${node.address}:${serverRpcPort}`;
}

function taggedAddresses(node: NodeInfo): Record<string, string> {
  if (node.other !== undefined) return { ...node.other.taggedAddresses };
  return { lan: node.address, lan_ipv4: node.address, wan: node.address, wan_ipv4: node.address };
}

/**
 * A duration in Go's `time.Duration.String()` form, as Consul writes intervals and timeouts:
 * `"10s"`, `"1m30s"`, `"1h0m0s"`, `"500ms"`, `"1.5s"`, `"0s"`.
 */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  const abs = Math.abs(ms);
  if (abs < 1) return `${sign}${trim(abs * 1000)}µs`;
  if (abs < 1000) return `${sign}${trim(abs)}ms`;
  const hours = Math.floor(abs / 3_600_000);
  const minutes = Math.floor((abs % 3_600_000) / 60_000);
  const seconds = (abs % 60_000) / 1000;
  if (hours > 0) return `${sign}${hours}h${minutes}m${trim(seconds)}s`;
  if (minutes > 0) return `${sign}${minutes}m${trim(seconds)}s`;
  return `${sign}${trim(seconds)}s`;
}

function trim(value: number): string {
  // Go prints up to nanosecond precision with no trailing zeros.
  return String(Number(value.toFixed(9)));
}

/**
 * Whether the node matches every `?node-meta=key:value` given, read as Consul does: a pair
 * without ":" wants an empty value, and a key given twice keeps its last value.
 * @example
 * matchesNodeMeta(node, ['consul-network-segment:']); // true for this server's node
 */
export function matchesNodeMeta(node: NodeInfo, filters: readonly string[]): boolean {
  const wanted = new Map<string, string>();
  for (const filter of filters) {
    const colon = filter.indexOf(':');
    if (colon === -1) wanted.set(filter, '');
    else wanted.set(filter.slice(0, colon), filter.slice(colon + 1));
  }
  return [...wanted].every(([key, value]) => Object.hasOwn(node.meta, key) && node.meta[key] === value);
}
