import type { FastifyReply, FastifyRequest } from 'fastify';
import { ConfigError, type Clock } from '@trellis/core';
import { ConcurrencyLimit, PerKey, TokenBucket, type RateLimiter } from '@trellis/resilience';
import { holdSlot, refusedByRate } from '../inbound-limit.js';
import type { ControllerRoute } from './controller-routes.js';

/** An onRequest hook of one route. */
export type RouteHook = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/**
 * The route's own limits, as one onRequest hook (undefined when it has none), so that a refused
 * request costs no body parsing and no validation: first `@RateLimit` (429 with Retry-After; one
 * token bucket for the route, or one per `key(request)` in a bounded PerKey), then `@Bulkhead`
 * (503; a ConcurrencyLimit for the route, its slot held until the response closes). The answers
 * are the app's inbound limits' own.
 */
export function routeLimits(route: ControllerRoute, clock: Clock): RouteHook | undefined {
  const { rateLimit, bulkhead } = route;
  const rate = rateLimit === undefined ? undefined : named(route, 'rateLimit', () => rateChooser(rateLimit, clock));
  const limit =
    bulkhead === undefined
      ? undefined
      : named(
          route,
          'bulkhead',
          () => new ConcurrencyLimit({ ...bulkhead, name: `${route.verb} ${route.url}`, clock }),
        );
  if (rate === undefined && limit === undefined) return undefined;
  return async (request, reply) => {
    if (rate !== undefined && refusedByRate(rate(request), reply)) return reply;
    if (limit !== undefined && !(await holdSlot(limit, reply))) return reply;
    return undefined;
  };
}

// A policy's ConfigError names the method it is on: "UsersController.one.rateLimit.ratePerSecond".
function named<T>(route: ControllerRoute, policy: string, make: () => T): T {
  try {
    return make();
  } catch (error) {
    if (ConfigError.is(error)) throw new ConfigError(`${route.name}.${policy}.${error.field}`, error.problem);
    throw error;
  }
}

function rateChooser(
  policy: NonNullable<ControllerRoute['rateLimit']>,
  clock: Clock,
): (request: FastifyRequest) => RateLimiter {
  const bucket = (): TokenBucket =>
    new TokenBucket({
      ratePerSecond: policy.ratePerSecond,
      ...(policy.burst === undefined ? {} : { burst: policy.burst }),
      clock,
    });
  const { key } = policy;
  if (key === undefined) {
    const one = bucket();
    return () => one;
  }
  // Made once now, so that a bad rate fails at start and not at the first request.
  bucket();
  const perKey = new PerKey({ create: bucket, clock });
  return (request) => perKey.get(key(request));
}
