import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { parseBlockingParams, type Topic } from './blocking-query.js';
import { allValues, clientGone, consistencyHeaders, query, queryFlag, route, text } from './consul-http.js';
import { checkJson, healthEntryJson, matchesNodeMeta, serfHealthJson } from './consul-json.js';
import type { ServerContext } from './server-context.js';

const checkStates = ['any', 'passing', 'warning', 'critical'] as const;

/**
 * `/v1/health/...`: services with their checks, checks by service, node or state; all of them
 * blocking queries, and all filtered by `?node-meta=key:value` (every pair must match).
 */
export function registerHealthApi(app: FastifyInstance, { catalog, blocking, node }: ServerContext): void {
  // Holds the read as a blocking query on the topics it reads, then answers with the index.
  const answer = async (
    request: FastifyRequest,
    reply: FastifyReply,
    reads: (topic: Topic) => boolean,
    body: () => unknown[],
  ): Promise<FastifyReply> => {
    await blocking.wait(parseBlockingParams(query(request)), () => catalog.index, reads, clientGone(reply));
    const nodeMatches = matchesNodeMeta(node, allValues(request, 'node-meta'));
    return reply
      .code(200)
      .headers(consistencyHeaders(catalog.index))
      .type('application/json')
      .send(JSON.stringify(nodeMatches ? body() : []));
  };
  // Node-level reads see every service and check of the node.
  const anyChange = (topic: Topic): boolean => topic.startsWith('service:');

  route(app, 'GET', '/v1/health/service/:name', async (request, reply) => {
    const { name } = request.params as { name: string };
    const passing = queryFlag(request, 'passing');
    if (passing === 'invalid') return text(reply, 400, 'Invalid value for ?passing');
    const tags = allValues(request, 'tag');
    const topic = `service:${name}`;
    // A check of the node itself (not of a service) counts for every service on it, as in Consul.
    const ofNode = (t: Topic): boolean => t === topic || t === 'service:';
    return answer(request, reply, ofNode, () => {
      const nodeChecks = catalog.checks().filter((check) => check.serviceId === '');
      const nodePassing = nodeChecks.every((check) => check.status === 'passing');
      return catalog
        .health(name)
        .filter((record) => tags.every((tag) => record.service.tags.includes(tag)))
        .filter(
          (record) => passing !== true || (nodePassing && record.checks.every((check) => check.status === 'passing')),
        )
        .map((record) => healthEntryJson(node, record, nodeChecks));
    });
  });

  route(app, 'GET', '/v1/health/checks/:service', async (request, reply) => {
    const { service } = request.params as { service: string };
    const topic = `service:${service}`;
    return answer(
      request,
      reply,
      (t) => t === topic,
      () => catalog.health(service).flatMap((record) => record.checks.map((check) => checkJson(node, check))),
    );
  });

  route(app, 'GET', '/v1/health/node/:node', async (request, reply) => {
    const { node: name } = request.params as { node: string };
    // Consul takes the node's name or its ID here.
    const isOurs = name === node.name || name === node.id;
    return answer(request, reply, anyChange, () => (isOurs ? nodeChecks() : []));
  });

  route(app, 'GET', '/v1/health/state/:state', async (request, reply) => {
    const { state } = request.params as { state: string };
    if (!(checkStates as readonly string[]).includes(state)) {
      return text(reply, 400, `Invalid check state "${state}": use any, passing, warning or critical`);
    }
    return answer(request, reply, anyChange, () =>
      nodeChecks().filter((check) => state === 'any' || check['Status'] === state),
    );
  });

  // serfHealth and every check of the node and its services, ordered by check id as Consul does.
  const nodeChecks = (): Record<string, unknown>[] =>
    [serfHealthJson(node), ...catalog.checks().map((check) => checkJson(node, check))].sort((a, b) =>
      compare(String(a['CheckID']), String(b['CheckID'])),
    );
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
