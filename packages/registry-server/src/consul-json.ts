import type { CheckRecord, HealthRecord, ServiceRecord } from './catalog.js';

/** The one node this server stands for, as Consul describes an agent's node. */
export interface NodeInfo {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly datacenter: string;
}

// The node and its serfHealth check exist from the start, at catalog index 1.
const nodeIndex = 1;

/**
 * One entry of `GET /v1/health/service/:name`, with Consul's field names: the node, the
 * service, and the checks (the node's "serfHealth" first, always passing, as in Consul).
 */
export function healthEntryJson(node: NodeInfo, record: HealthRecord): Record<string, unknown> {
  return {
    Node: nodeJson(node),
    Service: serviceJson(record.service),
    Checks: [serfHealthJson(node), ...record.checks.map((check) => checkJson(node, check))],
  };
}

function nodeJson(node: NodeInfo): Record<string, unknown> {
  return {
    ID: node.id,
    Node: node.name,
    Address: node.address,
    Datacenter: node.datacenter,
    TaggedAddresses: {
      lan: node.address,
      lan_ipv4: node.address,
      wan: node.address,
      wan_ipv4: node.address,
    },
    Meta: { 'consul-network-segment': '' },
    CreateIndex: nodeIndex,
    ModifyIndex: nodeIndex,
  };
}

function serviceJson(service: ServiceRecord): Record<string, unknown> {
  return {
    ID: service.id,
    Service: service.name,
    Tags: service.tags,
    Address: service.address,
    Meta: service.meta,
    Port: service.port,
    Weights: { Passing: service.weights.passing, Warning: service.weights.warning },
    EnableTagOverride: false,
    Proxy: { Mode: '', MeshGateway: {}, Expose: {} },
    Connect: {},
    CreateIndex: service.createIndex,
    ModifyIndex: service.modifyIndex,
  };
}

function checkJson(node: NodeInfo, check: CheckRecord): Record<string, unknown> {
  return {
    Node: node.name,
    CheckID: check.id,
    Name: check.name,
    Status: check.status,
    Notes: check.notes,
    Output: check.output,
    ServiceID: check.serviceId,
    ServiceName: check.serviceName,
    ServiceTags: check.serviceTags,
    Type: 'ttl',
    Interval: '',
    Timeout: '',
    ExposedPort: 0,
    Definition: {},
    CreateIndex: check.createIndex,
    ModifyIndex: check.modifyIndex,
  };
}

function serfHealthJson(node: NodeInfo): Record<string, unknown> {
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
