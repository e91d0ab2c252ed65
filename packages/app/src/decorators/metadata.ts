import type { ZodType } from 'zod';
import type { FastifyRequest } from 'fastify';
import type { TrellisError } from '@trellis/core';
import type { InboundChoice } from '../inbound-limit.js';
import type {
  AnyRateLimiter,
  CircuitBreakerConfig,
  ConcurrencyLimitOptions,
  RetryOptions,
  TokenBucketOptions,
} from '@trellis/resilience';

/** The HTTP verbs a decorated method maps to. */
export type HttpVerb = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * Where a parameter of a decorated method comes from (a controller) or goes to (a declarative
 * client): a path parameter, the query string, the body, a header or all headers, the request
 * itself, or the request's signal.
 */
export type ParameterSource = 'param' | 'query' | 'body' | 'header' | 'headers' | 'req' | 'signal';

/** One decorated parameter of a method. */
export interface ParameterBinding {
  /** Its position in the method's parameters. */
  readonly index: number;
  readonly source: ParameterSource;
  /** The path parameter, query parameter or header it is; undefined for the whole object. */
  readonly name: string | undefined;
  /** Checks (and may transform) the value; a controller answers 400 when it fails. */
  readonly schema: ZodType | undefined;
}

/** A controller method's rate limit: a token bucket per route, or per key of the request. */
export interface RateLimitPolicy extends Omit<TokenBucketOptions, 'clock'> {
  /** One bucket per key of the request (`(req) => req.ip`); default one bucket for the route. */
  readonly key?: (request: FastifyRequest) => string;
}

/**
 * A controller method's rate limit by a limiter of your own: a local one, or one shared by the
 * cluster (`ClusterRateLimiter` of @trellis/ratelimit), alone or one per key of the request
 * (`{ perKey, key }`). The answers are those of {@link RateLimitPolicy}'s bucket.
 */
export interface RateLimiterPolicy {
  readonly limiter: InboundChoice<AnyRateLimiter>;
}

/** A controller method's concurrency limit. */
export type BulkheadPolicy = Omit<ConcurrencyLimitOptions, 'clock' | 'name'>;

/** A declarative client method's retry options, or `false` for one attempt. */
export type RetryPolicy = Omit<RetryOptions, 'clock' | 'random'> | false;

/** A declarative client method's breaker thresholds (per instance of the called service). */
export type CircuitBreakerPolicy = Omit<CircuitBreakerConfig, 'clock'>;

/**
 * Makes a declarative client method's result when the call fails for a reason the caller would
 * rather not see; it receives the cause and the method's arguments. Throwing declines.
 */
export type FallbackPolicy = (cause: TrellisError, args: readonly unknown[]) => unknown;

/** What the decorators recorded of one method. */
export interface MethodMetadata {
  readonly key: string | symbol;
  /** `@Get(path)` and its kin; undefined for a method with policies or parameters but no verb. */
  route: { readonly verb: HttpVerb; readonly path: string } | undefined;
  /** Ordered by index. */
  readonly parameters: ParameterBinding[];
  timeoutMs: number | undefined;
  rateLimit: RateLimitPolicy | RateLimiterPolicy | undefined;
  bulkhead: BulkheadPolicy | undefined;
  retry: RetryPolicy | undefined;
  circuitBreaker: CircuitBreakerPolicy | undefined;
  fallback: FallbackPolicy | undefined;
}

/** What the decorators recorded of one class. */
export interface ClassMetadata {
  /** `@Controller(prefix)`: the prefix of its routes. */
  controller: { readonly prefix: string } | undefined;
  /** `@Client(service)`: the service its methods call. */
  client: { readonly service: string } | undefined;
  /** Policies set on the class, for every method that does not set its own. */
  readonly defaults: MethodMetadata;
  /** By property key, in declaration order. */
  readonly methods: Map<string | symbol, MethodMetadata>;
}

// Keyed by the class (constructor): decorators only record, the controller and client builders read.
const store = new WeakMap<object, ClassMetadata>();

/** The metadata the decorators recorded on `type`, or undefined when it has none. */
export function classMetadata(type: object): ClassMetadata | undefined {
  return store.get(type);
}

/** The record of `type`, made on first use. For the decorators. */
export function ownClassMetadata(type: object): ClassMetadata {
  let found = store.get(type);
  if (found === undefined) {
    found = { controller: undefined, client: undefined, defaults: emptyMethod(''), methods: new Map() };
    store.set(type, found);
  }
  return found;
}

/** The record of one method of `type`, made on first use. For the decorators. */
export function ownMethodMetadata(type: object, key: string | symbol): MethodMetadata {
  const owner = ownClassMetadata(type);
  let found = owner.methods.get(key);
  if (found === undefined) {
    found = emptyMethod(key);
    owner.methods.set(key, found);
  }
  return found;
}

function emptyMethod(key: string | symbol): MethodMetadata {
  return {
    key,
    route: undefined,
    parameters: [],
    timeoutMs: undefined,
    rateLimit: undefined,
    bulkhead: undefined,
    retry: undefined,
    circuitBreaker: undefined,
    fallback: undefined,
  };
}
