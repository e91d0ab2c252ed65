import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AccessNeed, Authorizer } from './acl-authorizer.js';
import type { RuleResource } from './acl-rules.js';
import type { AclStore, AclToken } from './acl-store.js';
import type { Catalog } from '../catalog/catalog.js';
import { firstValue, query, text } from '../http/consul-http.js';
import { decodeCheckDefinition, decodeServiceDefinition } from '../catalog/service-definition.js';

/** The token a request resolved to, and what it may do. */
export interface RequestIdentity {
  readonly token: AclToken;
  readonly authorizer: Authorizer;
}

/** What {@link registerAclEnforcement} reads. */
export interface AclEnforcementContext {
  readonly acl: AclStore;
  readonly catalog: Catalog;
  /** The node name, for node checks and `agent:read` on `/v1/agent/self`. */
  readonly nodeName: string;
}

// One check of a request: a right on a named resource, all the names under a prefix, or an
// ACL-system right.
type Need =
  | { readonly on: RuleResource; readonly name: string; readonly need: AccessNeed; readonly all?: boolean }
  | { readonly on: 'acl' | 'operator'; readonly need: AccessNeed };

// A list answer to cut down to what the token may read, as Consul filters by ACL.
type Filter = (body: unknown, authz: Authorizer, nodeName: string) => unknown;

// Open to every token, as in Consul; the lists among them are filtered on the way out.
const openRoutes = new Set([
  'GET /v1/status/leader',
  'GET /v1/status/peers',
  'GET /v1/catalog/datacenters',
  'GET /v1/catalog/services',
  'GET /v1/catalog/nodes',
  'GET /v1/agent/services',
  'GET /v1/agent/checks',
  'GET /v1/health/state/:state',
]);

const identities = new WeakMap<FastifyRequest, RequestIdentity>();

/**
 * The token of a request, once the enforcement hook resolved it; undefined with ACLs off.
 * The ACL endpoints read it for `token/self` and to redact secrets.
 */
export function identityOf(request: FastifyRequest): RequestIdentity | undefined {
  return identities.get(request);
}

/**
 * The secret a request carries, where Consul looks for it and in its order: `?token=`, then
 * `X-Consul-Token`, then `Authorization: Bearer <secret>`. Undefined when there is none.
 *
 * @example
 * requestToken(request); // 'b1gs3cr3t' for GET /v1/kv/a?token=b1gs3cr3t
 */
export function requestToken(request: FastifyRequest): string | undefined {
  const fromQuery = firstValue(request, 'token');
  if (fromQuery !== undefined && fromQuery !== '') return fromQuery;
  const header = request.headers['x-consul-token'];
  const fromHeader = Array.isArray(header) ? header[0] : header;
  if (fromHeader !== undefined && fromHeader !== '') return fromHeader;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
  return bearer?.[1];
}

/**
 * Enforces ACLs on every route in one place: a `preHandler` hook maps the route (method plus
 * `routeOptions.url`) and its parameters to the rights it needs, and answers 403 before the
 * route runs, so that a refused request changes nothing. An `onSend` hook filters list answers
 * (services, checks, nodes, KV listings) to what the token may read, as Consul does.
 *
 * For a service deregistration, a check update, and a registration that replaces an existing
 * service ID, the right is checked on the name of the service already registered, so that one
 * service's token can never deregister or overwrite another service.
 *
 * Status, datacenters, the /ui page, 404s and 405s are open, as in Consul. A `/v1` route
 * missing from the map needs `operator` (read for GET, write otherwise): closed by default.
 * Register it before the route modules, so that encapsulated scopes (KV) inherit it.
 *
 * @example
 * registerAclEnforcement(app, { acl, catalog, nodeName: 'trellis' });
 */
export function registerAclEnforcement(app: FastifyInstance, context: AclEnforcementContext): void {
  const filters = listFilters();
  app.addHook('preHandler', async (request: FastifyRequest, reply: FastifyReply) => {
    const url = request.routeOptions.url;
    // No route (404), or one of the 405 routes for the other methods of a path: nothing to guard.
    if (url === undefined || Array.isArray(request.routeOptions.method)) return;
    const secret = requestToken(request);
    const identity = context.acl.resolve(secret);
    // Consul's texts: an unknown secret is "ACL not found", whatever the route.
    if (identity === undefined) return text(reply, 403, 'ACL not found');
    identities.set(request, identity);
    const method = request.method === 'HEAD' ? 'GET' : request.method;
    const needs = needsOf(method, url, request, context);
    for (const need of needs) {
      if (!allowed(identity.authorizer, need)) return text(reply, 403, denied(identity.token, need));
    }
    return;
  });
  app.addHook('onSend', async (request, reply, payload) => {
    const url = request.routeOptions.url;
    const identity = identities.get(request);
    if (url === undefined || identity === undefined || reply.statusCode !== 200 || typeof payload !== 'string') {
      return payload;
    }
    const filter = filters.get(`${request.method === 'HEAD' ? 'GET' : request.method} ${url}`);
    if (filter === undefined || identity.authorizer.isManagement) return payload;
    const kvFilter = url === '/v1/kv/*';
    if (kvFilter && query(request)['recurse'] === undefined && query(request)['keys'] === undefined) return payload;
    const filtered = filter(JSON.parse(payload) as unknown, identity.authorizer, context.nodeName);
    // Consul answers 404 for a recursive read that the ACLs left empty, as for one with no keys.
    if (kvFilter && query(request)['recurse'] !== undefined && Array.isArray(filtered) && filtered.length === 0) {
      void reply.code(404);
      return '';
    }
    return JSON.stringify(filtered);
  });
}

function allowed(authz: Authorizer, need: Need): boolean {
  if (need.on === 'acl') return authz.allowsAcl(need.need);
  if (need.on === 'operator') return authz.allowsOperator(need.need);
  if (!('name' in need)) return false;
  return need.all === true
    ? authz.allowsAllUnder(need.on, need.name, need.need)
    : authz.allows(need.on, need.name, need.need);
}

// Consul's wording (acl.PermissionDeniedByACLError): starts with "Permission denied", which is
// what Consul clients match.
function denied(token: AclToken, need: Need): string {
  const on = 'name' in need ? `${need.on} ${JSON.stringify(need.name)}` : need.on;
  return `Permission denied: token with AccessorID '${token.accessorId}' lacks permission '${need.on}:${need.need}' on ${on}`;
}

function needsOf(method: string, url: string, request: FastifyRequest, context: AclEnforcementContext): Need[] {
  const params = (request.params ?? {}) as Record<string, string | undefined>;
  const body = typeof request.body === 'string' ? request.body : undefined;
  const { catalog, nodeName } = context;
  const serviceWrite = (name: string): Need => ({ on: 'service', name, need: 'write' });
  const serviceRead = (name: string): Need => ({ on: 'service', name, need: 'read' });
  // A check's owner: its service's name, or the node for a node check; unknown IDs go on to
  // the route's own 404.
  const checkWrite = (id: string | undefined): Need[] => {
    const check = id === undefined ? undefined : catalog.check(id);
    if (check === undefined) return [];
    return [check.serviceId === '' ? { on: 'node', name: nodeName, need: 'write' } : serviceWrite(check.serviceName)];
  };

  switch (`${method} ${url}`) {
    case 'PUT /v1/agent/service/register': {
      let def;
      try {
        def = decodeServiceDefinition(body);
      } catch {
        return []; // The route answers the 400 and changes nothing.
      }
      const needs = [serviceWrite(def.name)];
      const existing = catalog.service(def.id);
      if (existing !== undefined && existing.name !== def.name) needs.push(serviceWrite(existing.name));
      return needs;
    }
    case 'PUT /v1/agent/service/deregister/:id': {
      const existing = catalog.service(params['id'] ?? '');
      return existing === undefined ? [] : [serviceWrite(existing.name)];
    }
    case 'GET /v1/agent/service/:id': {
      const existing = catalog.service(params['id'] ?? '');
      return existing === undefined ? [] : [serviceRead(existing.name)];
    }
    case 'PUT /v1/agent/check/register': {
      let def;
      try {
        def = decodeCheckDefinition(body);
      } catch {
        return [];
      }
      if (def.serviceId === undefined || def.serviceId === '') return [{ on: 'node', name: nodeName, need: 'write' }];
      const service = catalog.service(def.serviceId);
      return service === undefined ? [] : [serviceWrite(service.name)];
    }
    case 'PUT /v1/agent/check/deregister/:id':
    case 'PUT /v1/agent/check/pass/:id':
    case 'PUT /v1/agent/check/warn/:id':
    case 'PUT /v1/agent/check/fail/:id':
    case 'PUT /v1/agent/check/update/:id':
      return checkWrite(params['id']);
    case 'GET /v1/agent/self':
      return [{ on: 'agent', name: nodeName, need: 'read' }];
    case 'GET /v1/catalog/service/:name':
    case 'GET /v1/health/service/:name':
      return [serviceRead(params['name'] ?? '')];
    case 'GET /v1/health/checks/:service':
      return [serviceRead(params['service'] ?? '')];
    case 'GET /v1/catalog/node/:node':
    case 'GET /v1/health/node/:node':
      return [{ on: 'node', name: params['node'] ?? '', need: 'read' }];
    case 'GET /v1/kv/*':
      // Listings are filtered key by key on the way out (Consul's default, without
      // acl.enable_key_list_policy); a single key needs read on it.
      if (query(request)['recurse'] !== undefined || query(request)['keys'] !== undefined) return [];
      return [{ on: 'key', name: params['*'] ?? '', need: 'read' }];
    case 'PUT /v1/kv/*':
      return [{ on: 'key', name: params['*'] ?? '', need: 'write' }];
    case 'DELETE /v1/kv/*':
      return [{ on: 'key', name: params['*'] ?? '', need: 'write', all: query(request)['recurse'] !== undefined }];
    case 'GET /v1/acl/token/self':
      return [];
    case 'GET /v1/acl/policies':
    case 'GET /v1/acl/policy/:id':
    case 'GET /v1/acl/tokens':
    case 'GET /v1/acl/token/:accessorId':
      return [{ on: 'acl', need: 'read' }];
    default:
      if (url.startsWith('/v1/acl/')) return [{ on: 'acl', need: 'write' }];
      if (!url.startsWith('/v1/') || openRoutes.has(`${method} ${url}`)) return [];
      // A route this map does not know yet is closed to all but operators, so that a new
      // endpoint is never open by accident.
      return [{ on: 'operator', need: method === 'GET' ? 'read' : 'write' }];
  }
}

function listFilters(): Map<string, Filter> {
  const asObject = (body: unknown): Record<string, unknown> =>
    typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  const asArray = (body: unknown): unknown[] => (Array.isArray(body) ? body : []);
  const field = (value: unknown, name: string): string => {
    const v = asObject(value)[name];
    return typeof v === 'string' ? v : '';
  };
  // A check of a service needs read on the service; a node check, on the node.
  const checkReadable = (check: unknown, authz: Authorizer, nodeName: string): boolean => {
    const service = field(check, 'ServiceName');
    if (service === '') return authz.allows('node', field(check, 'Node') || nodeName, 'read');
    return authz.allows('service', service, 'read');
  };
  const entries = (body: unknown, keep: (value: unknown, key: string) => boolean): Record<string, unknown> =>
    Object.fromEntries(Object.entries(asObject(body)).filter(([key, value]) => keep(value, key)));

  return new Map<string, Filter>([
    ['GET /v1/catalog/services', (body, authz) => entries(body, (_v, name) => authz.allows('service', name, 'read'))],
    [
      'GET /v1/agent/services',
      (body, authz) => entries(body, (service) => authz.allows('service', field(service, 'Service'), 'read')),
    ],
    ['GET /v1/agent/checks', (body, authz, node) => entries(body, (check) => checkReadable(check, authz, node))],
    [
      'GET /v1/health/state/:state',
      (body, authz, node) => asArray(body).filter((check) => checkReadable(check, authz, node)),
    ],
    [
      'GET /v1/health/node/:node',
      (body, authz, node) => asArray(body).filter((check) => checkReadable(check, authz, node)),
    ],
    [
      'GET /v1/catalog/nodes',
      (body, authz) => asArray(body).filter((n) => authz.allows('node', field(n, 'Node'), 'read')),
    ],
    [
      'GET /v1/catalog/node/:node',
      (body, authz) => {
        const node = asObject(body);
        const services = entries(node['Services'], (service) =>
          authz.allows('service', field(service, 'Service'), 'read'),
        );
        return { ...node, Services: services };
      },
    ],
    [
      'GET /v1/kv/*',
      (body, authz) =>
        asArray(body).filter((entry) =>
          authz.allows('key', typeof entry === 'string' ? entry : field(entry, 'Key'), 'read'),
        ),
    ],
  ]);
}
