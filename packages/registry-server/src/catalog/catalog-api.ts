import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { aclFilters, nodeNeed, openToAll, param, serviceNeed, type RouteAcl } from '../acl/route-acl.js';
import { parseBlockingParams, type Topic } from '../http/blocking-query.js';
import { allValues, clientGone, consistencyHeaders, query, route } from '../http/consul-http.js';
import { catalogServiceJson, matchesNodeMeta, nodeJson, serviceJson } from './consul-json.js';
import type { ServerContext } from '../http/server-context.js';

/**
 * `/v1/catalog/...`: what is registered, whatever its health: services, the nodes, and the
 * datacenters; every read of state is a blocking query, filtered by `?node-meta=key:value`.
 */
export function registerCatalogApi(app: FastifyInstance, { catalog, blocking, node }: ServerContext): void {
  // Holds the read as a blocking query on the topics it reads, then answers with their index
  // (the catalog's, unless the read names one service).
  const answer = async (
    request: FastifyRequest,
    reply: FastifyReply,
    reads: (topic: Topic) => boolean,
    body: (nodeMatches: boolean) => unknown,
    index: () => number = () => catalog.index,
  ): Promise<FastifyReply> => {
    await blocking.wait(parseBlockingParams(query(request)), index, reads, clientGone(reply));
    return reply
      .code(200)
      .headers(consistencyHeaders(index()))
      .type('application/json')
      .send(JSON.stringify(body(matchesNodeMeta(node, allValues(request, 'node-meta')))));
  };
  const anyChange = (topic: Topic): boolean => topic.startsWith('service:');
  const { asArray, asObject, entries, field } = aclFilters;
  // Open to every token, as in Consul, with the answer cut down to what the token may read.
  const readableServices: RouteAcl = {
    needs: () => [],
    filter: (body, authz) => entries(body, (_v, name) => authz.allows('service', name, 'read')),
  };
  const readableNodes: RouteAcl = {
    needs: () => [],
    filter: (body, authz) => asArray(body).filter((n) => authz.allows('node', field(n, 'Node'), 'read')),
  };
  const nodeServices: RouteAcl = {
    needs: (request) => [nodeNeed(param(request, 'node'), 'read')],
    filter: (body, authz) => {
      const answer = asObject(body);
      const services = entries(answer['Services'], (service) =>
        authz.allows('service', field(service, 'Service'), 'read'),
      );
      return { ...answer, Services: services };
    },
  };

  route(app, 'GET', '/v1/catalog/services', readableServices, async (request, reply) =>
    answer(request, reply, anyChange, (nodeMatches) => (nodeMatches ? Object.fromEntries(catalog.serviceTags()) : {})),
  );

  const serviceRead: RouteAcl = { needs: (request) => [serviceNeed(param(request, 'name'), 'read')] };
  route(app, 'GET', '/v1/catalog/service/:name', serviceRead, async (request, reply) => {
    const { name } = request.params as { name: string };
    const tags = allValues(request, 'tag');
    const topic = `service:${name}`;
    return answer(
      request,
      reply,
      (t) => t === topic,
      (nodeMatches) =>
        nodeMatches
          ? catalog
              .health(name)
              .filter((record) => tags.every((tag) => record.service.tags.includes(tag)))
              .map((record) => catalogServiceJson(node, record.service))
          : [],
      () => blocking.indexOf(topic),
    );
  });

  route(app, 'GET', '/v1/catalog/nodes', readableNodes, async (request, reply) =>
    answer(request, reply, anyChange, (nodeMatches) => (nodeMatches ? [nodeJson(node)] : [])),
  );

  route(app, 'GET', '/v1/catalog/node/:node', nodeServices, async (request, reply) => {
    const { node: name } = request.params as { node: string };
    // Consul answers an unknown node with 200 and `null`, and takes the node's name or ID.
    const isOurs = name === node.name || name === node.id;
    return answer(request, reply, anyChange, () =>
      isOurs
        ? { Node: nodeJson(node), Services: Object.fromEntries(catalog.services().map((s) => [s.id, serviceJson(s)])) }
        : null,
    );
  });

  route(app, 'GET', '/v1/catalog/datacenters', openToAll, async (_request, reply) =>
    reply
      .code(200)
      .type('application/json')
      .send(JSON.stringify([node.datacenter])),
  );
}
