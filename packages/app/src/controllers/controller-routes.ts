import { ConfigError } from '@trellis/core';
import {
  classMetadata,
  type BulkheadPolicy,
  type HttpVerb,
  type MethodMetadata,
  type ParameterBinding,
  type RateLimitPolicy,
  type RateLimiterPolicy,
} from '../decorators/metadata.js';
import type { Constructor } from '../declarative-client/declarative-client.js';

/** One decorated method of a controller as it is served: read once from the metadata at start. */
export interface ControllerRoute {
  readonly verb: HttpVerb;
  /** The route's template, prefix and path: what Fastify, metrics and traces name it by. */
  readonly url: string;
  readonly key: string | symbol;
  /** "UsersController.one", for errors and logs. */
  readonly name: string;
  readonly parameters: readonly ParameterBinding[];
  readonly timeoutMs: number | undefined;
  readonly rateLimit: RateLimitPolicy | RateLimiterPolicy | undefined;
  readonly bulkhead: BulkheadPolicy | undefined;
}

/**
 * The routes a `@Controller` class serves: each method with a verb, its policies falling back to
 * the class's. Policies and parameters on a method without a verb serve nothing.
 *
 * @throws ConfigError when the class has no `@Controller`, or a `@Param` names a parameter its
 *   path does not have (the method would always get undefined).
 */
export function controllerRoutes(type: Constructor): ControllerRoute[] {
  const metadata = classMetadata(type);
  if (metadata?.controller === undefined) {
    throw new ConfigError(type.name || 'controller', 'is not decorated with @Controller(prefix)');
  }
  const { prefix } = metadata.controller;
  const routes: ControllerRoute[] = [];
  for (const method of metadata.methods.values()) {
    if (method.route === undefined) continue;
    const url = prefix + method.route.path || '/';
    const name = `${type.name}.${String(method.key)}`;
    checkPathParameters(name, url, method);
    routes.push({
      verb: method.route.verb,
      url,
      key: method.key,
      name,
      parameters: method.parameters,
      timeoutMs: method.timeoutMs ?? metadata.defaults.timeoutMs,
      rateLimit: method.rateLimit ?? metadata.defaults.rateLimit,
      bulkhead: method.bulkhead ?? metadata.defaults.bulkhead,
    });
  }
  return routes;
}

function checkPathParameters(name: string, url: string, method: MethodMetadata): void {
  // Fastify's syntax: ":id", optionally followed by a regex or "?" ; "*" is the wildcard "*".
  const declared = new Set([...url.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]));
  if (url.includes('*')) declared.add('*');
  for (const parameter of method.parameters) {
    if (parameter.source === 'param' && parameter.name !== undefined && !declared.has(parameter.name)) {
      throw new ConfigError(
        `${name}`,
        `@Param(${JSON.stringify(parameter.name)}) is not a parameter of the path ${JSON.stringify(url)}`,
      );
    }
  }
}
