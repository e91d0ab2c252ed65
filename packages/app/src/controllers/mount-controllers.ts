import type { FastifyInstance } from 'fastify';
import type { Container } from 'inversify';
import type { AnyRateLimiter } from '@trellis/resilience';
import type { Constructor } from '../declarative-client/declarative-client.js';
import { controllerRoutes } from './controller-routes.js';
import { routeHandler, type HandlerContext } from './route-handler.js';
import { routeLimits } from './route-limits.js';

/**
 * Serves the decorated methods of `controllers` on `http`: each class is bound in `container`
 * (to itself, a singleton) unless it is bound already, resolved once, and each method with a verb
 * becomes one Fastify route at prefix + path, so that Fastify, metrics and traces name it by that
 * template. Call before the server listens.
 *
 * @throws ConfigError for a class without `@Controller` or a `@Param` its path lacks, and what
 *   the container throws when a dependency cannot be resolved.
 */
export async function mountControllers(
  http: FastifyInstance,
  container: Container,
  controllers: readonly Constructor[],
  context: HandlerContext & {
    /** Given each limiter of a `@RateLimit({ limiter })`, so that the app forwards its events and tells it the instance count. */
    readonly adoptLimiter?: (limiter: AnyRateLimiter) => void;
  },
): Promise<void> {
  for (const type of controllers) {
    const routes = controllerRoutes(type);
    if (!container.isBound(type)) container.bind(type).toSelf().inSingletonScope();
    const instance = await container.getAsync<object>(type);
    for (const route of routes) {
      const limits = routeLimits(route, context.clock, context.adoptLimiter);
      http.route({
        method: route.verb,
        url: route.url,
        ...(limits === undefined ? {} : { onRequest: limits }),
        handler: routeHandler(route, instance, context),
      });
    }
  }
}
