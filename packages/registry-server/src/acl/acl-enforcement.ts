import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Authorizer } from './acl-authorizer.js';
import type { RuleResource } from './acl-rules.js';
import type { AclStore, AclToken } from './acl-store.js';
import type { AclNeed } from './route-acl.js';
import { firstValue, text } from '../http/consul-http.js';

/** The token a request resolved to, and what it may do. */
export interface RequestIdentity {
  readonly token: AclToken;
  readonly authorizer: Authorizer;
}

/** Why the enforcement hook refused a request: an unknown secret, or a token without the right. */
export type AclDenial = 'token-not-found' | 'permission-denied';

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
 * Whether the request's token may read the resource `name`, for a route that filters what it
 * answers itself (a KV listing); always true with ACLs off.
 *
 * @example
 * const readable = mayRead(request, 'key');
 * kv.list(prefix).filter((entry) => readable(entry.key));
 */
export function mayRead(request: FastifyRequest, resource: RuleResource): (name: string) => boolean {
  const authz = identities.get(request)?.authorizer;
  if (authz === undefined || authz.isManagement) return () => true;
  return (name) => authz.allows(resource, name, 'read');
}

/**
 * Whether the request's token may read every name of `resource` (`node_prefix "" { policy =
 * "read" }`), so that an answer filtered by it is the same for every such token and may be
 * shared; always true with ACLs off.
 */
export function mayReadEvery(request: FastifyRequest, resource: RuleResource): boolean {
  const authz = identities.get(request)?.authorizer;
  return authz === undefined || authz.allowsAllUnder(resource, '', 'read');
}

/**
 * Enforces the ACL rights each route declares (`config.acl`, a {@link RouteAcl}): a
 * `preHandler` hook resolves the request's token and answers 403 before the route runs when
 * one of the route's needs is not granted, so that a refused request changes nothing. An
 * `onSend` hook cuts 200 answers down with the route's `filter`, as Consul filters lists.
 *
 * Closed by default: a `/v1` route that declares nothing needs `operator` (read for GET,
 * write otherwise), so a new endpoint is never open by accident. Paths outside /v1 (the /ui
 * page) and 404s are open. Register it before the route modules, so that encapsulated scopes
 * (KV) inherit it. `onDenied` is told of every refusal (the metrics count them).
 *
 * @example
 * registerAclEnforcement(app, acl);
 */
export function registerAclEnforcement(
  app: FastifyInstance,
  acl: AclStore,
  onDenied: (reason: AclDenial) => void = () => undefined,
): void {
  app.addHook('preHandler', async (request: FastifyRequest, reply: FastifyReply) => {
    const url = request.routeOptions.url;
    const declared = request.routeOptions.config.acl;
    // No route (the 404 handler answers), or a 405: nothing to guard.
    if (url === undefined || declared?.tokenless === true) return;
    const identity = acl.resolve(requestToken(request));
    // Consul's texts: an unknown secret is "ACL not found", whatever the route.
    if (identity === undefined) {
      onDenied('token-not-found');
      return text(reply, 403, 'ACL not found');
    }
    identities.set(request, identity);
    const needs: readonly AclNeed[] =
      declared !== undefined
        ? declared.needs(request)
        : url.startsWith('/v1/')
          ? [{ on: 'operator', need: request.method === 'GET' || request.method === 'HEAD' ? 'read' : 'write' }]
          : [];
    for (const need of needs) {
      if (!allowed(identity.authorizer, need)) {
        onDenied('permission-denied');
        return text(reply, 403, denied(identity.token, need));
      }
    }
    return;
  });
  app.addHook('onSend', async (request, reply, payload) => {
    const filter = request.routeOptions.config.acl?.filter;
    if (filter === undefined || reply.statusCode !== 200 || typeof payload !== 'string') return payload;
    const authz = identities.get(request)?.authorizer;
    if (authz === undefined || authz.isManagement) return payload;
    return JSON.stringify(filter(JSON.parse(payload) as unknown, authz));
  });
}

function allowed(authz: Authorizer, need: AclNeed): boolean {
  if (need.on === 'acl') return authz.allowsAcl(need.need);
  if (need.on === 'operator') return authz.allowsOperator(need.need);
  if (!('name' in need)) return false;
  return need.all === true
    ? authz.allowsAllUnder(need.on, need.name, need.need)
    : authz.allows(need.on, need.name, need.need);
}

// Consul's wording (acl.PermissionDeniedByACLError): starts with "Permission denied", which is
// what Consul clients match.
function denied(token: AclToken, need: AclNeed): string {
  const on = 'name' in need ? `${need.on} ${JSON.stringify(need.name)}` : need.on;
  return `Permission denied: token with AccessorID '${token.accessorId}' lacks permission '${need.on}:${need.need}' on ${on}`;
}
