import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Authorizer } from '../acl/acl-authorizer.js';
import { aclFilters, nodeNeed, param, serviceNeed } from '../acl/route-acl.js';
import { AnswerCache, type CachedAnswer } from '../http/answer-cache.js';
import { parseBlockingParams, type Topic } from '../http/blocking-query.js';
import { allValues, clientGone, consistencyHeaders, query, queryFlag, route, text } from '../http/consul-http.js';
import { checkJson, healthEntryJson, matchesNodeMeta, serfHealthJson } from './consul-json.js';
import type { ServerContext } from '../http/server-context.js';

const checkStates = ['any', 'passing', 'warning', 'critical'] as const;

/**
 * `/v1/health/...`: services with their checks, checks by service, node or state; all of them
 * blocking queries, and all filtered by `?node-meta=key:value` (every pair must match).
 */
export function registerHealthApi(app: FastifyInstance, { catalog, blocking, node }: ServerContext): void {
  // Holds the read as a blocking query on the topics it reads, then answers with their index.
  const answer = async (
    request: FastifyRequest,
    reply: FastifyReply,
    reads: (topic: Topic) => boolean,
    index: () => number,
    body: () => string | CachedAnswer,
  ): Promise<FastifyReply> => {
    await blocking.wait(parseBlockingParams(query(request)), index, reads, clientGone(reply));
    const nodeMatches = matchesNodeMeta(node, allValues(request, 'node-meta'));
    reply.code(200).headers(consistencyHeaders(index())).type('application/json');
    const content = nodeMatches ? body() : '[]';
    if (typeof content === 'string') return reply.send(content);
    // Large answers go compressed to clients that accept it, as Consul does (Go clients ask).
    if (!acceptsGzip(request)) return reply.send(content.body);
    return reply.header('content-encoding', 'gzip').header('vary', 'Accept-Encoding').send(content.gzipped());
  };
  // Node-level reads see every service and check of the node.
  const anyChange = (topic: Topic): boolean => topic.startsWith('service:');
  const catalogIndex = (): number => catalog.index;
  // A check of the node itself (not of a service) counts for every service on it, as in Consul;
  // its changes come under the topic of the empty service name.
  const nodeTopic = 'service:';
  const answers = new AnswerCache();
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
      const tags = allValues(request, 'tag');
      const topic = `service:${name}`;
      const index = (): number => Math.max(blocking.indexOf(topic), blocking.indexOf(nodeTopic));
      const key = JSON.stringify([name, passing, tags]);
      return answer(
        request,
        reply,
        (t) => t === topic || t === nodeTopic,
        index,
        () =>
          answers.get(key, index(), () => {
            const nodeChecks = catalog.nodeChecks();
            const nodePassing = nodeChecks.every((check) => check.status === 'passing');
            const entries = catalog
              .health(name)
              .filter((record) => tags.every((tag) => record.service.tags.includes(tag)))
              .filter(
                (record) =>
                  passing !== true || (nodePassing && record.checks.every((check) => check.status === 'passing')),
              )
              .map((record) => healthEntryJson(node, record, nodeChecks));
            return JSON.stringify(entries);
          }),
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
        () =>
          JSON.stringify(
            catalog.health(service).flatMap((record) => record.checks.map((check) => checkJson(node, check))),
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
      const isOurs = name === node.name || name === node.id;
      return answer(request, reply, anyChange, catalogIndex, () => JSON.stringify(isOurs ? nodeChecks() : []));
    },
  );

  // Open to every token, as in Consul; the checks are cut down to what the token may read.
  route(app, 'GET', '/v1/health/state/:state', { needs: () => [], filter: readableChecks }, async (request, reply) => {
    const { state } = request.params as { state: string };
    if (!(checkStates as readonly string[]).includes(state)) {
      return text(reply, 400, `Invalid check state "${state}": use any, passing, warning or critical`);
    }
    return answer(request, reply, anyChange, catalogIndex, () =>
      JSON.stringify(nodeChecks().filter((check) => state === 'any' || check['Status'] === state)),
    );
  });

  // serfHealth and every check of the node and its services, ordered by check id as Consul does.
  const nodeChecks = (): Record<string, unknown>[] =>
    [serfHealthJson(node), ...catalog.checks().map((check) => checkJson(node, check))].sort((a, b) =>
      compare(String(a['CheckID']), String(b['CheckID'])),
    );
}

function acceptsGzip(request: FastifyRequest): boolean {
  const accepted = request.headers['accept-encoding'];
  return typeof accepted === 'string' && /\bgzip\b/.test(accepted);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
