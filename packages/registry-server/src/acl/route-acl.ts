import type { FastifyRequest } from 'fastify';
import type { AccessNeed, Authorizer } from './acl-authorizer.js';
import type { RuleResource } from './acl-rules.js';

// What a route declares about ACLs, next to the route itself (`config.acl` of a Fastify route;
// `route()` of consul-http.ts takes it as a required argument). The enforcement hook in
// acl-enforcement.ts reads it; a /v1 route that declares nothing needs operator rights.

/**
 * One right a request needs: `need` on a named resource (on every name under it with `all`, as
 * a recursive delete needs), or an ACL-system right (`acl` manages tokens and policies).
 */
export type AclNeed =
  | { readonly on: RuleResource; readonly name: string; readonly need: AccessNeed; readonly all?: boolean }
  | { readonly on: 'acl' | 'operator'; readonly need: AccessNeed };

/**
 * The ACL rights of one route, declared where the route is registered.
 *
 * @example
 * route(app, 'GET', '/v1/catalog/service/:name', { needs: (r) => [serviceNeed(param(r, 'name'), 'read')] }, handler);
 */
export interface RouteAcl {
  /**
   * The rights a request needs, all of them; `[]` opens the route to every token (a known
   * one: an unknown secret is refused everywhere). Called before the handler, so a refused
   * request changes nothing. A need read from the body decodes it with `decodeOnce`, so the
   * handler does not decode it again. A body that does not decode may give `[]`: the handler
   * then answers 400 and changes nothing.
   */
  readonly needs: (request: FastifyRequest) => readonly AclNeed[];
  /** Cuts a 200 JSON answer (a list) down to what the token may read, as Consul filters by ACL. */
  readonly filter?: (body: unknown, authz: Authorizer) => unknown;
  /** Answered without looking at the token at all, an unknown one included (Consul's 405s). */
  readonly tokenless?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** See {@link RouteAcl}; a /v1 route without it needs `operator` rights. */
    acl?: RouteAcl;
  }
}

/** A route every known token may call (status, datacenters, the dashboard). */
export const openToAll: RouteAcl = { needs: () => [] };

/** The 405 answer for a known path with another method: given whatever the token, as Consul does. */
export const methodNotAllowed: RouteAcl = { needs: () => [], tokenless: true };

/** `need` on the service `name`. */
export function serviceNeed(name: string, need: AccessNeed): AclNeed {
  return { on: 'service', name, need };
}

/** `need` on the node `name`. */
export function nodeNeed(name: string, need: AccessNeed): AclNeed {
  return { on: 'node', name, need };
}

/** `need` on the key `name`, or on every key under it with `all`. */
export function keyNeed(name: string, need: AccessNeed, all = false): AclNeed {
  return all ? { on: 'key', name, need, all } : { on: 'key', name, need };
}

/** `need` on the agent `name`. */
export function agentNeed(name: string, need: AccessNeed): AclNeed {
  return { on: 'agent', name, need };
}

/** `acl = "<need>"`: managing tokens and policies. */
export function aclNeed(need: AccessNeed): AclNeed {
  return { on: 'acl', need };
}

/** A path parameter of the request ('' when missing). */
export function param(request: FastifyRequest, name: string): string {
  return (request.params as Record<string, string | undefined> | undefined)?.[name] ?? '';
}

/** Helpers for the route modules' list filters: fields of Consul's JSON answers. */
export const aclFilters = {
  asObject: (body: unknown): Record<string, unknown> =>
    typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {},
  asArray: (body: unknown): unknown[] => (Array.isArray(body) ? body : []),
  field: (value: unknown, name: string): string => {
    const v = aclFilters.asObject(value)[name];
    return typeof v === 'string' ? v : '';
  },
  /** The entries of an object answer that `keep` keeps. */
  entries: (body: unknown, keep: (value: unknown, key: string) => boolean): Record<string, unknown> =>
    Object.fromEntries(Object.entries(aclFilters.asObject(body)).filter(([key, value]) => keep(value, key))),
  /** A check of a service needs read on the service; a node check, on the node. */
  checkReadable: (check: unknown, authz: Authorizer, nodeName: string): boolean => {
    const service = aclFilters.field(check, 'ServiceName');
    if (service === '') return authz.allows('node', aclFilters.field(check, 'Node') || nodeName, 'read');
    return authz.allows('service', service, 'read');
  },
};
