import { ConfigError } from '@trellis/core';
import {
  ownClassMetadata,
  ownMethodMetadata,
  type BulkheadPolicy,
  type CircuitBreakerPolicy,
  type FallbackPolicy,
  type HttpVerb,
  type MethodMetadata,
  type RateLimitPolicy,
  type RateLimiterPolicy,
  type RetryPolicy,
} from './metadata.js';

type Decorator = ClassDecorator & MethodDecorator;

function verb(name: HttpVerb, decorator: string): (path?: string) => MethodDecorator {
  return (path = '') => {
    if (path !== '' && !path.startsWith('/')) {
      throw new ConfigError(`${decorator}.path`, `must start with "/", got ${JSON.stringify(path)}`);
    }
    return (target, key) => {
      const method = ownMethodMetadata(target.constructor, key);
      if (method.route !== undefined) {
        throw new ConfigError(String(key), `has two verbs: ${method.route.verb} and ${name}`);
      }
      method.route = { verb: name, path };
    };
  };
}

/** Serves (controller) or sends (client) a GET of `path`, appended to the controller's prefix. */
export const Get = verb('GET', 'Get');
/** Serves or sends a POST of `path`. */
export const Post = verb('POST', 'Post');
/** Serves or sends a PUT of `path`. */
export const Put = verb('PUT', 'Put');
/** Serves or sends a PATCH of `path`. */
export const Patch = verb('PATCH', 'Patch');
/** Serves or sends a DELETE of `path`. */
export const Delete = verb('DELETE', 'Delete');

// A policy decorator works on a method, or on the class for every method without its own.
function policy<K extends keyof MethodMetadata>(field: K, value: MethodMetadata[K]): Decorator {
  return (target: object, key?: string | symbol) => {
    const metadata =
      key === undefined
        ? ownClassMetadata(target).defaults
        : ownMethodMetadata((target as { constructor: object }).constructor, key);
    metadata[field] = value;
  };
}

function positiveMs(field: string, ms: number): number {
  if (!(Number.isFinite(ms) && ms > 0)) {
    throw new ConfigError(field, `must be a positive number of milliseconds, got ${ms}`);
  }
  return ms;
}

/**
 * On a controller method: answers 504 when the method has not answered in `ms`, and the request's
 * signal and deadline (which its outbound calls inherit) end then as well. On a declarative client
 * method: the call's deadline, retries included.
 */
export function Timeout(ms: number): Decorator {
  return policy('timeoutMs', positiveMs('Timeout.ms', ms));
}

/**
 * On a controller method: beyond this rate, 429 with Retry-After, before the method runs. Either
 * a token bucket's options (one bucket for the route, or one per `key`), or `{ limiter }`: a
 * limiter of your own, such as a cluster limit shared by every instance on Redis.
 *
 * @throws ConfigError when `limiter` is not a rate limiter or `{ perKey, key }`.
 * @example
 * const shared = new ClusterRateLimiter({ name: 'search', limit: 600, redis: 'redis://127.0.0.1:6379' });
 *
 * @Controller('/search')
 * class SearchController {
 *   @Get('/') @RateLimit({ limiter: shared })
 *   find(): string[] { return []; }
 *   @Get('/suggest') @RateLimit({ ratePerSecond: 20, burst: 5 })
 *   suggest(): string[] { return []; }
 * }
 */
export function RateLimit(options: RateLimitPolicy | RateLimiterPolicy): Decorator {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('RateLimit.options', 'must be token bucket options or { limiter }');
  }
  if ('limiter' in options) {
    const limiter: unknown = options.limiter;
    if (typeof limiter !== 'object' || limiter === null || !('tryAcquire' in limiter || 'perKey' in limiter)) {
      throw new ConfigError('RateLimit.limiter', 'must be a rate limiter (with tryAcquire) or { perKey, key }');
    }
  }
  return policy('rateLimit', options);
}

/** On a controller method: beyond this many in flight (and queued), 503, before the method runs. */
export function Bulkhead(options: BulkheadPolicy): Decorator {
  return policy('bulkhead', options);
}

/** On a declarative client method: the options of its stack's retry stage, or `false` for one attempt. */
export function Retry(options: RetryPolicy): Decorator {
  return policy('retry', options);
}

/** On a declarative client method: the thresholds of its stack's breaker stage. */
export function CircuitBreaker(options: CircuitBreakerPolicy): Decorator {
  return policy('circuitBreaker', options);
}

/**
 * On a declarative client method: what it returns in place of failing when its stack's fallback
 * stage takes over (an open circuit, a limit, a timeout, retries exhausted).
 */
export function Fallback(handler: FallbackPolicy): Decorator {
  if (typeof handler !== 'function') throw new ConfigError('Fallback.handler', 'must be a function');
  return policy('fallback', handler);
}
