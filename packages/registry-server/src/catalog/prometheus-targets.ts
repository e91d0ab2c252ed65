import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Authorizer } from '../acl/acl-authorizer.js';
import { aclFilters } from '../acl/route-acl.js';
import { uniqueSorted } from '../http/answer-cache.js';
import { allValues, queryFlag, route, text } from '../http/consul-http.js';
import type { ServerContext } from '../http/server-context.js';
import type { CheckRecord, HealthRecord } from './catalog-records.js';
import { otherNodeInfo, type NodeInfo } from './consul-json.js';
import type { CheckStatus } from './service-definition.js';

/** Where the registry serves Prometheus's HTTP service discovery. */
export const prometheusTargetsPath = '/v1/trellis/prometheus-targets';

/** One target group of Prometheus's HTTP SD format: a single instance and its labels. */
export interface TargetGroup {
  readonly targets: readonly [string];
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * `GET /v1/trellis/prometheus-targets`: every instance of the catalog as Prometheus's HTTP
 * service discovery wants it (`http_sd_configs`), so that a scrape config needs only the
 * registry's address. Each instance is one group:
 *
 * - `job` is the service's name and `instance` the instance's id, the labels series are then
 *   stored under without any relabelling (a target label Prometheus is given wins over the
 *   scrape config's job name);
 * - the `__meta_consul_*` labels of Prometheus's own Consul discovery (service, service id,
 *   node, address, port, tags as `,a,b,`, `service_metadata_<key>`, `health`, `dc`), so that
 *   relabel rules written for `consul_sd_configs` work unchanged;
 * - `__metrics_path__` from the instance's `metrics_path` meta, when it has one.
 *
 * The server itself is listed as the `consul` service it is in its own catalog, at the
 * address the request reached it on. `?service=` (repeatable) keeps those services, `?tag=`
 * (repeatable) instances with every tag, `?passing` instances whose checks all pass. With
 * ACLs on, a token sees the services it may read.
 */
export function registerPrometheusTargets(app: FastifyInstance, { catalog, node }: ServerContext): void {
  const readable = (body: unknown, authz: Authorizer): unknown[] =>
    aclFilters
      .asArray(body)
      .filter((group) =>
        authz.allows('service', aclFilters.field((group as TargetGroup).labels, '__meta_consul_service'), 'read'),
      );
  route(app, 'GET', prometheusTargetsPath, { needs: () => [], filter: readable }, async (request, reply) => {
    const passing = queryFlag(request, 'passing');
    if (passing === 'invalid') return text(reply, 400, 'Invalid value for ?passing');
    const only = new Set(allValues(request, 'service'));
    const tags = uniqueSorted(allValues(request, 'tag'));
    const wanted = (name: string): boolean => only.size === 0 || only.has(name);
    const localChecks = catalog.nodeChecks();
    const groups: TargetGroup[] = [];
    if (wanted('consul') && tags.length === 0 && catalog.service('consul') === undefined) {
      groups.push(selfGroup(request, node, health(localChecks)));
    }
    for (const name of catalog.serviceTags().keys()) {
      if (!wanted(name)) continue;
      for (const record of catalog.health(name)) {
        if (!tags.every((tag) => record.service.tags.includes(tag))) continue;
        const status = health([...(record.node?.checks ?? localChecks), ...record.checks]);
        if (passing === true && status !== 'passing') continue;
        groups.push(
          instanceGroup(
            record,
            record.node === undefined ? node : otherNodeInfo(record.node.record, node.datacenter),
            status,
          ),
        );
      }
    }
    return reply.code(200).type('application/json').send(JSON.stringify(groups));
  });
}

function instanceGroup(record: HealthRecord, node: NodeInfo, status: CheckStatus): TargetGroup {
  const { service } = record;
  const address = service.address === '' ? node.address : service.address;
  const labels: Record<string, string> = {
    job: service.name,
    instance: service.id,
    ...consulLabels(node, status),
    __meta_consul_service: service.name,
    __meta_consul_service_id: service.id,
    __meta_consul_service_address: service.address,
    __meta_consul_service_port: String(service.port),
    // Prometheus's Consul SD form: the separator at both ends, so that `,tag,` always matches.
    __meta_consul_tags: service.tags.length === 0 ? '' : `,${service.tags.join(',')},`,
  };
  for (const [key, value] of Object.entries(service.meta))
    labels[`__meta_consul_service_metadata_${labelName(key)}`] = value;
  const path = service.meta['metrics_path'];
  if (path !== undefined && path.startsWith('/')) labels['__metrics_path__'] = path;
  return { targets: [hostPort(address, service.port)], labels };
}

// The server's own metrics are on its HTTP port, which is where Prometheus's request arrived.
function selfGroup(request: FastifyRequest, node: NodeInfo, status: CheckStatus): TargetGroup {
  const { localAddress, localPort } = request.socket;
  return {
    targets: [hostPort(localAddress ?? node.address, localPort ?? 8500)],
    labels: {
      job: 'consul',
      instance: node.name,
      ...consulLabels(node, status),
      __meta_consul_service: 'consul',
      __meta_consul_service_id: 'consul',
      __meta_consul_service_address: '',
      __meta_consul_service_port: String(localPort ?? 8500),
      __meta_consul_tags: '',
    },
  };
}

function consulLabels(node: NodeInfo, status: CheckStatus): Record<string, string> {
  const labels: Record<string, string> = {
    __meta_consul_node: node.name,
    __meta_consul_address: node.address,
    __meta_consul_dc: node.datacenter,
    __meta_consul_health: status,
  };
  for (const [key, value] of Object.entries(node.meta)) labels[`__meta_consul_metadata_${labelName(key)}`] = value;
  return labels;
}

// Consul's aggregated status: the worst of the checks (the node's serfHealth passes here).
function health(checks: readonly CheckRecord[]): CheckStatus {
  if (checks.some((c) => c.status === 'critical')) return 'critical';
  if (checks.some((c) => c.status === 'warning')) return 'warning';
  return 'passing';
}

// A label name is [a-zA-Z_][a-zA-Z0-9_]*: Prometheus's discovery replaces what else a key has.
function labelName(key: string): string {
  return key.replace(/[^a-zA-Z0-9_]/g, '_');
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
