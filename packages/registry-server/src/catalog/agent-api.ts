import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { agentNeed, aclFilters, nodeNeed, param, serviceNeed, type AclNeed, type RouteAcl } from '../acl/route-acl.js';
import { parseBlockingParams } from '../http/blocking-query.js';
import { clientGone, decodeOnce, firstValue, query, queryFlag, route, text } from '../http/consul-http.js';
import { agentSelfJson, memberJson } from './agent-json.js';
import { agentServiceJson, agentServiceWithHashJson, checkJson } from './consul-json.js';
import {
  nodeMaintenanceCheck,
  nodeMaintenanceId,
  serviceMaintenanceCheck,
  serviceMaintenanceId,
} from './maintenance.js';
import type { ServerContext } from '../http/server-context.js';
import {
  decodeCheckDefinition,
  decodeServiceDefinition,
  RequestDecodeError,
  type CheckStatus,
} from './service-definition.js';

// Consul's limit on a check's Output (checks.DefaultBufSize); longer updates are cut.
const maxOutputLength = 4 * 1024;

/**
 * `/v1/agent/...`: the agent's services and checks (listing, registering, deregistering),
 * TTL check updates, and `/v1/agent/self`.
 */
export function registerAgentApi(
  app: FastifyInstance,
  { catalog, blocking, node, acl, enableScriptChecks = false }: ServerContext,
): void {
  // Consul's own words, which tools match on (the HTTP API is a "remote call" to Consul).
  const scriptsRefused = (reply: FastifyReply): FastifyReply =>
    text(
      reply,
      400,
      "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true",
    );

  const unknownCheck = (reply: FastifyReply, id: string): FastifyReply =>
    text(reply, 404, `Unknown check ID ${JSON.stringify(id)}. Ensure that the check ID is passed, not the check name.`);

  const json = (reply: FastifyReply, body: unknown): FastifyReply =>
    reply.code(200).type('application/json').send(JSON.stringify(body));

  // ACL rights are checked on the service already registered under an ID, so that one
  // service's token can never deregister, overwrite or read another service by its ID; an
  // unknown ID needs nothing and goes on to the route's own 404.
  const existingService = (id: string, need: 'read' | 'write'): AclNeed[] => {
    const existing = catalog.service(id);
    return existing === undefined ? [] : [serviceNeed(existing.name, need)];
  };
  // A check's owner: its service, or the node for a node check.
  const checkWrite = (id: string): AclNeed[] => {
    const check = catalog.check(id);
    if (check === undefined) return [];
    return [check.serviceId === '' ? nodeNeed(node.name, 'write') : serviceNeed(check.serviceName, 'write')];
  };
  const checkOwner: RouteAcl = { needs: (request) => checkWrite(param(request, 'id')) };
  // Registering a check under an ID already in use moves that check to the new owner, so it
  // needs write on the check's current owner too, as Consul's vetCheckRegister asks: otherwise
  // a token of one service could take over another's critical check and make it pass.
  const checkMoves = (ids: readonly string[], newOwner: string): AclNeed[] =>
    ids.flatMap((id) => {
      const check = catalog.check(id);
      return check === undefined || check.serviceName === newOwner ? [] : checkWrite(id);
    });
  const { entries, field, checkReadable } = aclFilters;

  const serviceRegister: RouteAcl = {
    needs: (request) => {
      let def;
      try {
        def = decodeOnce(request, decodeServiceDefinition);
      } catch {
        return []; // The route answers the 400 and changes nothing.
      }
      const needs = [serviceNeed(def.name, 'write')];
      const existing = catalog.service(def.id);
      if (existing !== undefined && existing.name !== def.name) needs.push(serviceNeed(existing.name, 'write'));
      needs.push(
        ...checkMoves(
          def.checks.map((check) => check.id),
          def.name,
        ),
      );
      return needs;
    },
  };
  route(app, 'PUT', '/v1/agent/service/register', serviceRegister, async (request, reply) => {
    let def;
    try {
      def = decodeOnce(request, decodeServiceDefinition);
    } catch (error) {
      if (error instanceof RequestDecodeError) return text(reply, 400, error.message);
      throw error;
    }
    const replaceExistingChecks = queryFlag(request, 'replace-existing-checks');
    if (replaceExistingChecks === 'invalid') return text(reply, 400, 'Invalid value for ?replace-existing-checks');
    if (!enableScriptChecks && def.checks.some((check) => check.script !== undefined)) return scriptsRefused(reply);
    catalog.register(def, { replaceExistingChecks });
    return reply.code(200).send();
  });

  route(
    app,
    'PUT',
    '/v1/agent/service/deregister/:id',
    { needs: (r) => existingService(param(r, 'id'), 'write') },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      if (!catalog.deregister(id)) {
        return text(
          reply,
          404,
          `Unknown service ID ${JSON.stringify(id)}. Ensure that the service ID is passed, not the service name.`,
        );
      }
      return reply.code(200).send();
    },
  );

  // Open to every token, as in Consul, and cut down to the services it may read.
  const readableServices: RouteAcl = {
    needs: () => [],
    filter: (body, authz) => entries(body, (service) => authz.allows('service', field(service, 'Service'), 'read')),
  };
  route(app, 'GET', '/v1/agent/services', readableServices, async (_request, reply) =>
    json(reply, Object.fromEntries(catalog.services().map((s) => [s.id, agentServiceJson(node, s)]))),
  );

  route(
    app,
    'GET',
    '/v1/agent/service/:id',
    { needs: (r) => existingService(param(r, 'id'), 'read') },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      const hash = firstValue(request, 'hash');
      const current = (): ReturnType<typeof agentServiceWithHashJson> | undefined => {
        const service = catalog.service(id);
        return service === undefined ? undefined : agentServiceWithHashJson(node, service);
      };
      let body = current();
      // Consul blocks this endpoint on the content hash rather than an index: wait for the
      // next change to the service while the client's hash is still the current one.
      if (hash !== undefined && hash !== '' && body !== undefined && body['ContentHash'] === hash) {
        const topic = `service:${String(body['Service'])}`;
        const params = parseBlockingParams({ ...query(request), index: String(catalog.index) });
        await blocking.wait(
          params,
          () => catalog.index,
          (t) => t === topic,
          clientGone(reply),
        );
        body = current();
      }
      if (body === undefined) return text(reply, 404, `unknown service ID: ${id}`);
      return json(reply.header('X-Consul-ContentHash', String(body['ContentHash'])), body);
    },
  );

  const readableChecks: RouteAcl = {
    needs: () => [],
    filter: (body, authz) => entries(body, (check) => checkReadable(check, authz, node.name)),
  };
  route(app, 'GET', '/v1/agent/checks', readableChecks, async (_request, reply) =>
    json(reply, Object.fromEntries(catalog.checks().map((c) => [c.id, checkJson(node, c)]))),
  );

  const checkRegister: RouteAcl = {
    needs: (request) => {
      let def;
      try {
        def = decodeOnce(request, decodeCheckDefinition);
      } catch {
        return [];
      }
      if (def.serviceId === undefined || def.serviceId === '') {
        // A node check has the empty service name.
        return [nodeNeed(node.name, 'write'), ...checkMoves([def.id], '')];
      }
      const service = existingService(def.serviceId, 'write');
      // An unknown service goes on to the route's own 404.
      return service.length === 0
        ? []
        : [...service, ...checkMoves([def.id], catalog.service(def.serviceId)?.name ?? '')];
    },
  };
  route(app, 'PUT', '/v1/agent/check/register', checkRegister, async (request, reply) => {
    let def;
    try {
      def = decodeOnce(request, decodeCheckDefinition);
    } catch (error) {
      if (error instanceof RequestDecodeError) return text(reply, 400, error.message);
      throw error;
    }
    if (!enableScriptChecks && def.script !== undefined) return scriptsRefused(reply);
    if (!catalog.registerCheck(def, def.serviceId)) {
      return text(reply, 404, `ServiceID ${JSON.stringify(def.serviceId)} does not exist`);
    }
    return reply.code(200).send();
  });

  route(app, 'PUT', '/v1/agent/check/deregister/:id', checkOwner, async (request, reply) => {
    const { id } = request.params as { id: string };
    if (!catalog.deregisterCheck(id)) return unknownCheck(reply, id);
    return reply.code(200).send();
  });

  const update = (reply: FastifyReply, id: string, status: CheckStatus, output: string): FastifyReply => {
    const result = catalog.updateCheck(id, status, output.slice(0, maxOutputLength));
    if (result === 'unknown') return unknownCheck(reply, id);
    // Consul refuses too: the server's own runs set an HTTP check's status.
    if (result === 'not-ttl') return text(reply, 400, `CheckID ${JSON.stringify(id)} does not have associated TTL`);
    return reply.code(200).send();
  };

  const statusOf: Record<string, CheckStatus> = { pass: 'passing', warn: 'warning', fail: 'critical' };
  for (const [verb, status] of Object.entries(statusOf)) {
    route(app, 'PUT', `/v1/agent/check/${verb}/:id`, checkOwner, async (request, reply) => {
      const { id } = request.params as { id: string };
      return update(reply, id, status, firstValue(request, 'note') ?? '');
    });
  }

  route(app, 'PUT', '/v1/agent/check/update/:id', checkOwner, async (request, reply) => {
    const { id } = request.params as { id: string };
    let fields: Map<string, unknown>;
    try {
      fields = decodeObject(typeof request.body === 'string' ? request.body : '');
    } catch (error) {
      if (error instanceof RequestDecodeError) return text(reply, 400, error.message);
      throw error;
    }
    const status = fields.get('status') ?? '';
    const output = fields.get('output') ?? '';
    if (typeof output !== 'string') return text(reply, 400, 'Request decode failed: Output must be a string');
    if (status !== 'passing' && status !== 'warning' && status !== 'critical') {
      return text(reply, 400, `Invalid check status: ${JSON.stringify(status)}; expected passing, warning or critical`);
    }
    return update(reply, id, status, output);
  });

  // ?enable= as Consul reads it: required, and a Go boolean (strconv.ParseBool).
  const enableOf = (request: FastifyRequest, reply: FastifyReply): boolean | FastifyReply => {
    const raw = firstValue(request, 'enable');
    if (raw === undefined) return text(reply, 400, 'Missing value for enable');
    if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(raw)) return true;
    if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(raw)) return false;
    return text(reply, 400, `Invalid value for enable: ${JSON.stringify(raw)}`);
  };

  // Adds or removes the node's critical maintenance check; enabling twice keeps the first reason.
  route(
    app,
    'PUT',
    '/v1/agent/maintenance',
    { needs: () => [nodeNeed(node.name, 'write')] },
    async (request, reply) => {
      const enable = enableOf(request, reply);
      if (typeof enable !== 'boolean') return enable;
      if (!enable) catalog.deregisterCheck(nodeMaintenanceId);
      else if (catalog.check(nodeMaintenanceId) === undefined) {
        catalog.registerCheck(nodeMaintenanceCheck(firstValue(request, 'reason') ?? ''), undefined);
      }
      return reply.code(200).send();
    },
  );

  // The same for one service instance, by its ID.
  route(
    app,
    'PUT',
    '/v1/agent/service/maintenance/:id',
    { needs: (request) => existingService(param(request, 'id'), 'write') },
    async (request, reply) => {
      const id = param(request, 'id');
      const enable = enableOf(request, reply);
      if (typeof enable !== 'boolean') return enable;
      if (catalog.service(id) === undefined) {
        return text(reply, 404, `No service registered with ID ${JSON.stringify(id)}`);
      }
      const checkId = serviceMaintenanceId(id);
      if (!enable) catalog.deregisterCheck(checkId);
      else if (catalog.check(checkId) === undefined) {
        catalog.registerCheck(serviceMaintenanceCheck(id, firstValue(request, 'reason') ?? ''), id);
      }
      return reply.code(200).send();
    },
  );

  route(app, 'GET', '/v1/agent/self', { needs: () => [agentNeed(node.name, 'read')] }, async (_request, reply) => {
    const checks = catalog.checks();
    const counts = {
      services: catalog.services().length,
      checks: checks.length,
      ttlChecks: checks.filter((check) => check.type === 'ttl').length,
      scriptChecks: checks.filter((check) => check.type === 'script').length,
    };
    return json(reply, agentSelfJson(node, counts, acl !== undefined));
  });

  // The LAN pool, or with ?wan (any value, as Consul reads it) the WAN pool: this node alone.
  // Open, and listing the member only with node:read on it, as Consul filters members.
  const readableMembers: RouteAcl = {
    needs: () => [],
    filter: (body, authz) => (authz.allows('node', node.name, 'read') ? body : []),
  };
  route(app, 'GET', '/v1/agent/members', readableMembers, async (request, reply) => {
    const wan = (firstValue(request, 'wan') ?? '') !== '';
    return json(reply, [memberJson(node, wan)]);
  });
}

// A JSON object body with keys matched in any case, as Consul reads them.
function decodeObject(body: string): Map<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new RequestDecodeError('body', `Request decode failed: the body is not valid JSON (${reason})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RequestDecodeError('body', 'Request decode failed: body must be a JSON object');
  }
  return new Map(Object.entries(value).map(([key, v]) => [key.toLowerCase(), v]));
}
