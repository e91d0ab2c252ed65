import type { FastifyReply, FastifyRequest } from 'fastify';
import { ConfigError, type Clock } from '@trellis/core';
import { ConcurrencyLimit, PerKey, TokenBucket, type AnyRateLimiter } from '@trellis/resilience';
import { holdSlot, inboundChooser, rateRefusal } from '../inbound-limit.js';
import type { ControllerRoute } from './controller-routes.js';

/** An onRequest hook of one route. */
export type RouteHook = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/**
 * The route's own limits, as one onRequest hook (undefined when it has none), so that a refused
 * request costs no body parsing and no validation: first `@RateLimit` (429 with Retry-After; one
 * token bucket for the route, or one per `key(request)` in a bounded PerKey, or the limiter it
 * was given, local or shared by the cluster and then awaited), then `@Bulkhead`
 * (503; a ConcurrencyLimit for the route, its slot held until the response closes). The answers
 * are the app's inbound limits' own.
 */
export function routeLimits(
  route: ControllerRoute,
  clock: Clock,
  adopt: (limiter: AnyRateLimiter) => void = () => undefined,
): RouteHook | undefined {
  const { rateLimit, bulkhead } = route;
  const rate =
    rateLimit === undefined ? undefined : named(route, 'rateLimit', () => rateChooser(rateLimit, clock, adopt));
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
    if (rate !== undefined) {
      const refused = rateRefusal(rate(request), reply);
      if (refused === true || (refused !== false && (await refused))) return reply;
    }
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
  adopt: (limiter: AnyRateLimiter) => void,
): (request: FastifyRequest) => AnyRateLimiter {
  if ('limiter' in policy) {
    return inboundChooser('limiter', policy.limiter, adopt);
  }
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
