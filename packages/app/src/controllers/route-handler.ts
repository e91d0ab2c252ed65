import type { FastifyReply, FastifyRequest } from 'fastify';
import { ConfigError, type Clock } from '@trellis/core';
import { TimeoutError } from '@trellis/resilience';
import { inboundScope, type InboundScope } from '@trellis/client';
import type { ControllerRoute } from './controller-routes.js';
import { HttpError } from './http-error.js';
import { argumentsReader } from './method-arguments.js';

type Method = (...args: unknown[]) => unknown;

/** What a route's handler needs of the app. */
export interface HandlerContext {
  readonly clock: Clock;
  /** The app's service name, for the TimeoutError a `@Timeout` aborts the request's signal with. */
  readonly service: string;
}

/**
 * The Fastify handler of one controller method: its arguments read and checked (400), the method
 * called on the controller's one instance, and its result answered: JSON for a value, 204 for
 * undefined; what it throws goes to the app's error handler. With `@Timeout`, see {@link timed}.
 *
 * @throws ConfigError when the instance has no method under the route's key.
 */
export function routeHandler(route: ControllerRoute, instance: object, context: HandlerContext): RouteHandler {
  const method = (instance as Record<string | symbol, unknown>)[route.key];
  if (typeof method !== 'function') throw new ConfigError(route.name, 'is not a method of the controller instance');
  const read = argumentsReader(route.parameters);
  if (route.timeoutMs !== undefined) return timed(route, route.timeoutMs, instance, method as Method, read, context);
  // Not async: Fastify sends a plain value at once, and waits only for a method that is async.
  return (request, reply) => {
    const args = read(request, reply);
    if (args === undefined) return undefined;
    const result = (method as Method).apply(instance, args);
    return isThenable(result) ? answerLater(result, reply) : answer(result, reply);
  };
}

/** A Fastify handler: a value to send, a promise of one, or undefined once it has answered itself. */
export type RouteHandler = (request: FastifyRequest, reply: FastifyReply) => unknown;

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function';
}

function answer(value: unknown, reply: FastifyReply): unknown {
  if (value !== undefined) return value;
  void reply.code(204).send();
  return undefined;
}

async function answerLater(result: PromiseLike<unknown>, reply: FastifyReply): Promise<unknown> {
  const value = await result;
  // The reply is a thenable that settles when the answer is sent: Fastify then sends nothing more.
  return value === undefined ? reply.code(204).send() : value;
}

/**
 * A `@Timeout(ms)` route: before the arguments are read, the request's scope is replaced by a
 * tighter one, whose deadline is the earlier of the caller's and now + ms and whose signal aborts
 * (with a TimeoutError) then or when the caller's does; `@Signal()`, `request.inbound` and the
 * outbound calls the method makes see it. When the deadline passes first, the answer is 504
 * `{ error: "TIMEOUT" }` and what the method returns later is dropped. These closures per request
 * are the price of a timer; routes without `@Timeout` make none.
 */
function timed(
  route: ControllerRoute,
  ms: number,
  instance: object,
  method: Method,
  read: ReturnType<typeof argumentsReader>,
  { clock, service }: HandlerContext,
): RouteHandler {
  return async (request, reply) => {
    const outer = request.inbound;
    const now = clock.now();
    const deadline = outer.deadline === undefined ? now + ms : Math.min(outer.deadline, now + ms);
    const controller = new AbortController();
    if (outer.signal.aborted) controller.abort(outer.signal.reason);
    else outer.signal.addEventListener('abort', () => controller.abort(outer.signal.reason), { once: true });
    const scope: InboundScope = { signal: controller.signal, deadline };
    request.inbound = scope;
    const args = read(request, reply);
    // Async: the reply, a thenable settled once the 400 is sent, so that Fastify sends nothing more.
    if (args === undefined) return reply;
    const result = await new Promise<unknown>((resolve, reject) => {
      const left = Math.max(0, deadline - now);
      const timer = clock.setTimer(left, () => {
        controller.abort(new TimeoutError('deadline', left, service));
        reject(new HttpError(504, 'TIMEOUT', `${route.verb} ${route.url} did not answer within ${left} ms`));
      });
      const settle = (fn: (value: unknown) => void) => (value: unknown) => {
        timer.cancel();
        fn(value);
      };
      try {
        Promise.resolve(inboundScope.run(scope, () => method.apply(instance, args))).then(
          settle(resolve),
          settle(reject),
        );
      } catch (error) {
        settle(reject)(error);
      }
    });
    return result === undefined ? reply.code(204).send() : result;
  };
}
