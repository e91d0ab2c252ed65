import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { identityOf, mayRead } from '../acl/acl-enforcement.js';
import { aclFilters, nodeNeed, openToAll, param, serviceNeed, type AclNeed, type RouteAcl } from '../acl/route-acl.js';
import { parseBlockingParams, type Topic } from '../http/blocking-query.js';
import { allValues, clientGone, consistencyHeaders, decodeOnce, query, route, text } from '../http/consul-http.js';
import { noPathToDatacenter } from '../http/datacenter-check.js';
import type { ServerContext } from '../http/server-context.js';
import { compare, type HealthRecord } from './catalog-records.js';
import { decodeNodeDeregistration, decodeNodeRegistration } from './catalog-registration.js';
import {
  catalogServiceJson,
  consulServiceRecord,
  matchesNodeMeta,
  nodeJson,
  otherNodeInfo,
  serviceJson,
  type NodeInfo,
} from './consul-json.js';
import { NodeRegistrationError } from './external-nodes.js';
import { RequestDecodeError } from './service-definition.js';

/**
 * `/v1/catalog/...`: what is registered, whatever its health: services, the nodes, and the
 * datacenters; every read of state is a blocking query, filtered by `?node-meta=key:value`.
 * `register` and `deregister` put nodes other than this server's in the catalog, with their
 * services and checks, as Consul ESM and other tools do.
 */
export function registerCatalogApi(app: FastifyInstance, { catalog, blocking, node }: ServerContext): void {
  // Holds the read as a blocking query on the topics it reads, then answers with their index
  // (the catalog's, unless the read names one service).
  const answer = async (
    request: FastifyRequest,
    reply: FastifyReply,
    reads: (topic: Topic) => boolean,
    body: (matches: (node: NodeInfo) => boolean) => unknown,
    index: () => number = () => catalog.index,
  ): Promise<FastifyReply> => {
    await blocking.wait(parseBlockingParams(query(request)), index, reads, clientGone(reply));
    const filters = allValues(request, 'node-meta');
    return reply
      .code(200)
      .headers(consistencyHeaders(index()))
      .type('application/json')
      .send(JSON.stringify(body((n) => matchesNodeMeta(n, filters))));
  };
  // Reads of whole nodes see every change of services, checks and nodes.
  const anyChange = (topic: Topic): boolean => topic.startsWith('service:') || topic.startsWith('node:');
  const nodeOf = (record: HealthRecord): NodeInfo =>
    record.node === undefined ? node : otherNodeInfo(record.node.record, node.datacenter);
  const isLocal = (name: string): boolean => name.toLowerCase() === node.name.toLowerCase() || name === node.id;
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
  const serviceRead: RouteAcl = { needs: (request) => [serviceNeed(param(request, 'name'), 'read')] };

  // As Consul's vetRegisterWithACL: node write unless the node is re-posted unchanged, service
  // write on the service and on the one its ID held, and on the service of each check (node
  // write for a check of the node).
  const registerNeeds: RouteAcl = {
    needs: (request) => {
      let req;
      try {
        req = decodeOnce(request, decodeNodeRegistration);
      } catch {
        return []; // The route answers the 400 and changes nothing.
      }
      const nodeWrite = nodeNeed(req.node, 'write');
      const needs: AclNeed[] = [];
      const other = catalog.otherNodes.node(req.node);
      const changesNode =
        other === undefined ||
        (!req.skipNodeUpdate &&
          (other.address !== req.address ||
            (req.id !== '' && other.id !== req.id) ||
            JSON.stringify(other.meta) !== JSON.stringify(req.meta) ||
            JSON.stringify(other.taggedAddresses) !== JSON.stringify(req.taggedAddresses)));
      if (changesNode) needs.push(nodeWrite);
      const services = new Map(catalog.otherNodes.servicesOf(req.node).map((r) => [r.service.id, r.service.name]));
      if (req.service !== undefined) {
        needs.push(serviceNeed(req.service.name, 'write'));
        const before = services.get(req.service.id);
        if (before !== undefined && before !== req.service.name) needs.push(serviceNeed(before, 'write'));
      }
      for (const check of req.checks) {
        if (check.serviceId === '') needs.push(nodeWrite);
        else if (check.serviceId !== req.service?.id) {
          const name = services.get(check.serviceId);
          if (name !== undefined) needs.push(serviceNeed(name, 'write'));
        }
      }
      return needs;
    },
  };
  // As Consul's vetDeregisterWithACL: node write allows everything on the node; else service
  // write on the service removed, or on the service of the check removed.
  const deregisterNeeds: RouteAcl = {
    needs: (request) => {
      let req;
      try {
        req = decodeOnce(request, decodeNodeDeregistration);
      } catch {
        return [];
      }
      const nodeWrite = nodeNeed(req.node, 'write');
      if (identityOf(request)?.authorizer.allows('node', req.node, 'write') === true) return [nodeWrite];
      let serviceName: string | undefined;
      if (req.serviceId !== '') {
        serviceName = catalog.otherNodes.servicesOf(req.node).find((r) => r.service.id === req.serviceId)?.service.name;
      } else if (req.checkId !== '') {
        const check = catalog.otherNodes.checksOf(req.node).find((c) => c.id === req.checkId);
        serviceName = check?.serviceName === '' ? undefined : check?.serviceName;
      }
      return [serviceName === undefined ? nodeWrite : serviceNeed(serviceName, 'write')];
    },
  };

  route(app, 'PUT', '/v1/catalog/register', registerNeeds, async (request, reply) => {
    let req;
    try {
      req = decodeOnce(request, decodeNodeRegistration);
    } catch (error) {
      if (error instanceof RequestDecodeError) return text(reply, 400, error.message);
      throw error;
    }
    if (req.datacenter !== '' && req.datacenter !== node.datacenter) return text(reply, 500, noPathToDatacenter);
    // The agent's own services have their own endpoint, as Consul's anti-entropy would undo this.
    if (isLocal(req.node)) {
      return text(
        reply,
        400,
        `Node "${req.node}" is this server's own node: register its services with /v1/agent/service/register`,
      );
    }
    try {
      catalog.registerNode(req);
    } catch (error) {
      if (error instanceof NodeRegistrationError) return text(reply, 400, error.message);
      throw error;
    }
    return reply.code(200).type('application/json').send('true');
  });

  route(app, 'PUT', '/v1/catalog/deregister', deregisterNeeds, async (request, reply) => {
    let req;
    try {
      req = decodeOnce(request, decodeNodeDeregistration);
    } catch (error) {
      if (error instanceof RequestDecodeError) return text(reply, 400, error.message);
      throw error;
    }
    if (req.datacenter !== '' && req.datacenter !== node.datacenter) return text(reply, 500, noPathToDatacenter);
    if (isLocal(req.node)) {
      return text(
        reply,
        400,
        `Node "${req.node}" is this server's own node: deregister its services with /v1/agent/service/deregister`,
      );
    }
    catalog.deregisterNode(req);
    return reply.code(200).type('application/json').send('true');
  });

  route(app, 'GET', '/v1/catalog/services', readableServices, async (request, reply) =>
    answer(request, reply, anyChange, (matches) => {
      if (allValues(request, 'node-meta').length === 0) {
        return Object.fromEntries([['consul', []], ...catalog.serviceTags()]);
      }
      // Only the services on matching nodes, with the tags of those instances.
      const tags = new Map<string, Set<string>>();
      const add = (name: string, of: readonly string[]): void => {
        let set = tags.get(name);
        if (set === undefined) tags.set(name, (set = new Set()));
        for (const tag of of) set.add(tag);
      };
      if (matches(node)) {
        add('consul', []);
        for (const service of catalog.services()) add(service.name, service.tags);
      }
      for (const other of catalog.otherNodes.nodes()) {
        if (!matches(otherNodeInfo(other, node.datacenter))) continue;
        for (const record of catalog.otherNodes.servicesOf(other.name)) add(record.service.name, record.service.tags);
      }
      return Object.fromEntries(
        [...tags].sort(([a], [b]) => compare(a, b)).map(([name, set]) => [name, [...set].sort(compare)]),
      );
    }),
  );

  route(app, 'GET', '/v1/catalog/service/:name', serviceRead, async (request, reply) => {
    const { name } = request.params as { name: string };
    const tags = allValues(request, 'tag');
    const topic = `service:${name}`;
    // As in Consul (and health/service), an instance is listed only with read on its node too.
    const nodeReadable = mayRead(request, 'node');
    return answer(
      request,
      reply,
      (t) => t === topic,
      (matches) => {
        const records: HealthRecord[] = catalog.health(name);
        if (name === 'consul' && catalog.service('consul') === undefined) {
          records.unshift({ service: consulServiceRecord(), checks: [] });
        }
        return records
          .filter((record) => tags.every((tag) => record.service.tags.includes(tag)) && matches(nodeOf(record)))
          .filter((record) => nodeReadable(nodeOf(record).name))
          .map((record) => catalogServiceJson(nodeOf(record), record.service));
      },
      () => blocking.indexOf(topic),
    );
  });

  route(app, 'GET', '/v1/catalog/nodes', readableNodes, async (request, reply) =>
    answer(request, reply, anyChange, (matches) =>
      [node, ...catalog.otherNodes.nodes().map((other) => otherNodeInfo(other, node.datacenter))]
        .filter(matches)
        .sort((a, b) => compare(a.name, b.name))
        .map(nodeJson),
    ),
  );

  route(app, 'GET', '/v1/catalog/node/:node', nodeServices, async (request, reply) => {
    const { node: name } = request.params as { node: string };
    // Consul answers an unknown node with 200 and `null`, and takes the node's name or ID.
    return answer(request, reply, anyChange, () => {
      if (isLocal(name)) {
        const services = [consulServiceRecord(), ...catalog.services()];
        return { Node: nodeJson(node), Services: Object.fromEntries(services.map((s) => [s.id, serviceJson(s)])) };
      }
      const other = catalog.otherNodes.node(name);
      if (other === undefined) return null;
      const services = catalog.otherNodes.servicesOf(name).map((record) => record.service);
      return {
        Node: nodeJson(otherNodeInfo(other, node.datacenter)),
        Services: Object.fromEntries(services.map((s) => [s.id, serviceJson(s)])),
      };
    });
  });

  route(app, 'GET', '/v1/catalog/datacenters', openToAll, async (_request, reply) =>
    reply
      .code(200)
      .type('application/json')
      .send(JSON.stringify([node.datacenter])),
  );
}
