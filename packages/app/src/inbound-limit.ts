import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ConfigError } from '@trellis/core';
import {
  BulkheadFullError,
  isPendingDecision,
  PerKey,
  type AnyRateLimiter,
  type ConcurrencyLimit,
  type Decision,
  type RateLimiter,
} from '@trellis/resilience';
import { healthRoutes } from './health-routes.js';

/** One limiter for all requests, or one per key of the request (caller, route, user). */
export type InboundChoice<L extends { readonly idle: boolean }> =
  | L
  | {
      readonly perKey: PerKey<L>;
      /** The key of a request, e.g. `(req) => req.routeOptions.url ?? req.url` or `(req) => req.ip`. */
      readonly key: (request: FastifyRequest) => string;
    };

/** The limits a service puts on the requests it serves. */
export interface InboundLimits {
  /**
   * Beyond this rate a request is answered 429 with a Retry-After header, before any work is done.
   * A local limiter (TokenBucket) is asked at once; an `AsyncRateLimiter` (a cluster limit on
   * Redis) is awaited, with the same answer.
   */
  readonly rate?: InboundChoice<AnyRateLimiter>;
  /**
   * Beyond this many requests in flight a request waits in the limit's queue, or is answered
   * 503 when the queue is full or its wait times out.
   */
  readonly concurrency?: InboundChoice<ConcurrencyLimit>;
  /** Requests no limit applies to; default the health checks, the scrape and the status page: `GET /health` (and `/health/live`, `/health/ready`, `/info`), `GET /metrics`, `GET /trellis`. */
  readonly exempt?: (request: FastifyRequest) => boolean;
}

// A refused scrape, health check or status page would hide the overload it should show.
export const isHealthCheck = (request: FastifyRequest): boolean =>
  healthRoutes.has(request.routeOptions.url ?? '') ||
  request.routeOptions.url === '/metrics' ||
  request.routeOptions.url === '/trellis';

/**
 * Puts inbound limits on every route of a Fastify server (a TrellisApp's `http`): first the
 * rate (429, `Retry-After` in whole seconds, JSON `{ error: "RATE_LIMITED", retryAfterMs }`), then
 * the concurrency limit (503, JSON `{ error: "BULKHEAD_FULL" }`), whose slot is held until the
 * response is finished or the connection closes. Call it before the server starts. `adopt`
 * is shown each rate limiter picked (see {@link inboundChooser}); `app.limitInbound` passes the
 * app's own, which takes over a cluster limit.
 *
 * @throws ConfigError when a per-key choice has no key function.
 * @example
 * applyInboundLimits(app.http, {
 *   rate: { perKey: new PerKey({ create: () => new TokenBucket({ ratePerSecond: 50, burst: 20 }) }), key: (req) => req.ip },
 *   concurrency: new ConcurrencyLimit({ maxConcurrent: 64, maxQueue: 128, queueTimeoutMs: 500 }),
 * });
 */
export function applyInboundLimits(
  http: FastifyInstance,
  limits: InboundLimits,
  adopt?: (limiter: AnyRateLimiter) => void,
): void {
  const rate = limits.rate === undefined ? undefined : inboundChooser('rate', limits.rate, adopt);
  const concurrency = limits.concurrency === undefined ? undefined : inboundChooser('concurrency', limits.concurrency);
  const exempt = limits.exempt ?? isHealthCheck;

  http.addHook('onRequest', async (request, reply) => {
    if (exempt(request)) return;
    if (rate !== undefined) {
      const refused = rateRefusal(rate(request), reply);
      if (refused === true || (refused !== false && (await refused))) return reply;
    }
    if (concurrency !== undefined && !(await holdSlot(concurrency(request), reply))) return reply;
    return undefined;
  });
}

/**
 * Asks `limiter` for one request; when it refuses, answers 429 with `Retry-After` in whole seconds
 * and `{ error: "RATE_LIMITED", message, retryAfterMs }`, and returns true. Shared by the app's
 * inbound limits and controllers' `@RateLimit`, so that a caller sees one answer for both.
 */
export function refusedByRate(limiter: RateLimiter, reply: FastifyReply): boolean {
  return answerRate(limiter.tryAcquire(), reply);
}

/**
 * {@link refusedByRate} for either kind of limiter: a local one's answer at once (a boolean, no
 * promise), an async one's as a promise of it.
 */
export function rateRefusal(limiter: AnyRateLimiter, reply: FastifyReply): boolean | Promise<boolean> {
  const decision = limiter.tryAcquire();
  return isPendingDecision(decision) ? decision.then((d) => answerRate(d, reply)) : answerRate(decision, reply);
}

function answerRate(decision: Decision, reply: FastifyReply): boolean {
  if (decision.granted) return false;
  // A limiter of the user's own may not say when; a second is Retry-After's smallest step.
  const retryAfterMs = decision.retryAfterMs ?? 1_000;
  void reply
    .code(429)
    .header('retry-after', String(Math.max(1, Math.ceil(retryAfterMs / 1_000))))
    .send({ error: 'RATE_LIMITED', message: `too many requests; retry in ${retryAfterMs} ms`, retryAfterMs });
  return true;
}

/**
 * Takes a slot of `limit` for the request, waiting in its queue if need be, and gives it back
 * exactly once when the response closes. When the limit refuses (queue full, wait timed out, or
 * the caller left while queued), answers 503 `{ error: "BULKHEAD_FULL" | "CLIENT_CLOSED", message }`
 * and resolves false. Shared by the app's inbound limits and controllers' `@Bulkhead`.
 */
export async function holdSlot(limit: ConcurrencyLimit, reply: FastifyReply): Promise<boolean> {
  if (!limit.tryAcquire().granted) {
    try {
      await limit.acquire(closedSignal(reply));
    } catch (error) {
      const full = BulkheadFullError.is(error);
      // When the caller went away while queued, nobody reads this answer; sending it ends the request cleanly.
      void reply.code(503).send({
        error: full ? 'BULKHEAD_FULL' : 'CLIENT_CLOSED',
        message: full ? 'too many requests in flight; try another instance' : 'the caller closed the connection',
      });
      return false;
    }
  }
  // Exactly one release per slot: when the response closes (finished or cut off), or now if
  // it closed already (the caller left before this hook or during the hand-off of a slot).
  let held = true;
  const release = (): void => {
    if (held) limit.release();
    held = false;
  };
  if (reply.raw.closed) release();
  else reply.raw.once('close', release);
  return true;
}

/** A signal that aborts when the response closes (the caller went away). Made only for a queued request. */
function closedSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  if (reply.raw.closed) controller.abort(new Error('the caller closed the connection'));
  else reply.raw.once('close', () => controller.abort(new Error('the caller closed the connection')));
  return controller.signal;
}

/**
 * The function that picks a request's limiter from a choice; `field` names it in errors.
 * `adopt` is shown every limiter picked: the one given, at once, or each key's, when picked
 * (an app takes over a cluster limit's events and instance count so, and ignores repeats).
 */
export function inboundChooser<L extends { readonly idle: boolean }>(
  field: string,
  choice: InboundChoice<L>,
  adopt?: (limiter: L) => void,
): (request: FastifyRequest) => L {
  if (typeof choice === 'object' && 'perKey' in choice) {
    const { perKey, key } = choice;
    if (!(perKey instanceof PerKey)) throw new ConfigError(`${field}.perKey`, 'must be a PerKey');
    if (typeof key !== 'function') throw new ConfigError(`${field}.key`, 'must be a function of the request');
    if (adopt === undefined) return (request) => perKey.get(key(request));
    return (request) => {
      const limiter = perKey.get(key(request));
      adopt(limiter);
      return limiter;
    };
  }
  adopt?.(choice);
  return () => choice;
}
