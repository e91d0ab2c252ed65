import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Authorizer } from '../acl/acl-authorizer.js';
import { mayRead, mayReadEvery } from '../acl/acl-enforcement.js';
import { aclFilters, nodeNeed, param, serviceNeed } from '../acl/route-acl.js';
import { answerKey, type CachedAnswer, uniqueSorted } from '../http/answer-cache.js';
import { parseBlockingParams, type Topic } from '../http/blocking-query.js';
import { allValues, clientGone, consistencyHeaders, query, queryFlag, route, text } from '../http/consul-http.js';
import type { ServerContext } from '../http/server-context.js';
import { compare, type CheckRecord, type HealthRecord } from './catalog-records.js';
import {
  checkJson,
  consulServiceRecord,
  healthEntryJson,
  matchesNodeMeta,
  otherNodeInfo,
  serfHealthJson,
  type NodeInfo,
} from './consul-json.js';

const checkStates = ['any', 'passing', 'warning', 'critical'] as const;

/**
 * `/v1/health/...`: services with their checks, checks by service, node or state; all of them
 * blocking queries, and all filtered by `?node-meta=key:value` (every pair must match), on
 * this server's node and the others registered in the catalog.
 */
export function registerHealthApi(app: FastifyInstance, { catalog, blocking, node, answers }: ServerContext): void {
  // Holds the read as a blocking query on the topics it reads, then answers with their index.
  const answer = async (
    request: FastifyRequest,
    reply: FastifyReply,
    reads: (topic: Topic) => boolean,
    index: () => number,
    body: (matches: (node: NodeInfo) => boolean, filters: readonly string[]) => string | CachedAnswer,
  ): Promise<FastifyReply> => {
    await blocking.wait(parseBlockingParams(query(request)), index, reads, clientGone(reply));
    const filters = allValues(request, 'node-meta');
    reply.code(200).headers(consistencyHeaders(index())).type('application/json');
    const content = body((n) => matchesNodeMeta(n, filters), filters);
    if (typeof content === 'string') return reply.send(content);
    // Large answers go compressed to clients that accept it, as Consul does (Go clients ask).
    if (!acceptsGzip(request)) return reply.send(content.body);
    return reply.header('content-encoding', 'gzip').header('vary', 'Accept-Encoding').send(content.gzipped());
  };
  // Node-level reads see every service and check of every node.
  const anyChange = (topic: Topic): boolean => topic.startsWith('service:') || topic.startsWith('node:');
  const catalogIndex = (): number => catalog.index;
  // A check of the node itself (not of a service) counts for every service on it, as in Consul;
  // its changes come under the topic of the empty service name.
  const nodeTopic = 'service:';
  const nodeOf = (record: HealthRecord): NodeInfo =>
    record.node === undefined ? node : otherNodeInfo(record.node.record, node.datacenter);
  const isLocal = (name: string): boolean => name.toLowerCase() === node.name.toLowerCase() || name === node.id;
  const readableChecks = (body: unknown, authz: Authorizer): unknown[] =>
    aclFilters.asArray(body).filter((check) => aclFilters.checkReadable(check, authz, node.name));

  route(
    app,
    'GET',
    '/v1/health/service/:name',
    { needs: (r) => [serviceNeed(param(r, 'name'), 'read')] },
    async (request, reply) => {
      const { name } = request.params as { name: string };
      const passing = queryFlag(request, 'passing');
      if (passing === 'invalid') return text(reply, 400, 'Invalid value for ?passing');
      // Once each: ?tag=t repeated a thousand times is the same read as ?tag=t, and cached as one.
      const tags = uniqueSorted(allValues(request, 'tag'));
      const topic = `service:${name}`;
      const index = (): number => Math.max(blocking.indexOf(topic), blocking.indexOf(nodeTopic));
      // As in Consul, an instance is listed only to a token that may read its node as well as its
      // service. Most tokens may read every node: their answers are the shared, cached ones.
      const everyNode = mayReadEvery(request, 'node');
      const nodeReadable = mayRead(request, 'node');
      return answer(
        request,
        reply,
        (t) => t === topic || t === nodeTopic,
        index,
        (matches, filters) => {
          const build = (): string => {
            const localChecks = catalog.nodeChecks();
            const records = catalog.health(name);
            // The server's own `consul` service, unless an agent service took its id.
            if (name === 'consul' && catalog.service('consul') === undefined) {
              records.unshift({ service: consulServiceRecord(), checks: [] });
            }
            const entries = records
              .filter((record) => tags.every((tag) => record.service.tags.includes(tag)))
              .filter((record) => matches(nodeOf(record)) && (everyNode || nodeReadable(nodeOf(record).name)))
              .filter(
                (record) =>
                  passing !== true ||
                  [...(record.node?.checks ?? localChecks), ...record.checks].every((c) => c.status === 'passing'),
              )
              .map((record) => healthEntryJson(node, record, localChecks));
            return JSON.stringify(entries);
          };
          return everyNode ? answers.get(answerKey(name, passing, tags, filters), index(), build) : build();
        },
      );
    },
  );

  route(
    app,
    'GET',
    '/v1/health/checks/:service',
    { needs: (r) => [serviceNeed(param(r, 'service'), 'read')] },
    async (request, reply) => {
      const { service } = request.params as { service: string };
      const topic = `service:${service}`;
      return answer(
        request,
        reply,
        (t) => t === topic,
        () => blocking.indexOf(topic),
        (matches) =>
          JSON.stringify(
            catalog
              .health(service)
              .filter((record) => matches(nodeOf(record)))
              .flatMap((record) => record.checks.map((check) => checkJson(nodeOf(record), check))),
          ),
      );
    },
  );

  route(
    app,
    'GET',
    '/v1/health/node/:node',
    { needs: (r) => [nodeNeed(param(r, 'node'), 'read')], filter: readableChecks },
    async (request, reply) => {
      const { node: name } = request.params as { node: string };
      // Consul takes the node's name or its ID here.
      return answer(request, reply, anyChange, catalogIndex, () => {
        if (isLocal(name)) return JSON.stringify(localNodeChecks());
        const other = catalog.otherNodes.node(name);
        if (other === undefined) return '[]';
        return JSON.stringify(otherChecks(catalog.otherNodes.checksOf(name), otherNodeInfo(other, node.datacenter)));
      });
    },
  );

  // Open to every token, as in Consul; the checks are cut down to what the token may read.
  route(app, 'GET', '/v1/health/state/:state', { needs: () => [], filter: readableChecks }, async (request, reply) => {
    const { state } = request.params as { state: string };
    if (!(checkStates as readonly string[]).includes(state)) {
      return text(reply, 400, `Invalid check state "${state}": use any, passing, warning or critical`);
    }
    return answer(request, reply, anyChange, catalogIndex, (matches) => {
      const checks = matches(node) ? localNodeChecks() : [];
      for (const other of catalog.otherNodes.nodes()) {
        const info = otherNodeInfo(other, node.datacenter);
        if (matches(info)) checks.push(...otherChecks(catalog.otherNodes.checksOf(other.name), info));
      }
      return JSON.stringify(checks.filter((check) => state === 'any' || check['Status'] === state));
    });
  });

  // serfHealth and every check of the node and its services, ordered by check id as Consul does.
  const localNodeChecks = (): Record<string, unknown>[] =>
    [serfHealthJson(node), ...catalog.checks().map((check) => checkJson(node, check))].sort((a, b) =>
      compare(String(a['CheckID']), String(b['CheckID'])),
    );
  const otherChecks = (checks: readonly CheckRecord[], info: NodeInfo): Record<string, unknown>[] =>
    checks.map((check) => checkJson(info, check));
}

function acceptsGzip(request: FastifyRequest): boolean {
  const accepted = request.headers['accept-encoding'];
  return typeof accepted === 'string' && /\bgzip\b/.test(accepted);
}
