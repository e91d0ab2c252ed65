export { CircuitBreaker } from './breaker/circuit-breaker.js';
export type {
  CircuitBreakerConfig,
  CircuitBreakerOptions,
  CircuitSnapshot,
  CircuitState,
  CircuitStateChange,
} from './breaker/circuit-breaker.js';
export { CircuitBreakerRegistry } from './breaker/circuit-breaker-registry.js';
export type { CircuitBreakerRegistryOptions } from './breaker/circuit-breaker-registry.js';
export { CircuitOpenError } from './breaker/circuit-open-error.js';
export {
  instanceCircuitBreaker,
  isServerErrorReply,
  isTargetError,
  serviceCircuitBreaker,
} from './breaker/breaker-filter.js';
export type { CircuitBreakerFilterOptions } from './breaker/breaker-filter.js';
export { BulkheadFullError } from './bulkhead/bulkhead-full-error.js';
export { ConcurrencyLimit } from './bulkhead/concurrency-limit.js';
export type { ConcurrencyLimitOptions } from './bulkhead/concurrency-limit.js';
export { defaultFallbackCodes, fallback, fallbackHeader, fallbackInstanceId } from './fallback/fallback.js';
export type { FallbackAnswer, FallbackHandler, FallbackOptions } from './fallback/fallback.js';
export { Hedging } from './hedging/hedging.js';
export type { HedgeEvent, HedgingOptions } from './hedging/hedging.js';
export { bulkhead, rateLimit } from './ratelimit/limit-filters.js';
export type { LimitFilter, LimitFilterOptions, LimiterChoice } from './ratelimit/limit-filters.js';
export { RateLimitedError } from './ratelimit/rate-limited-error.js';
export { granted } from './ratelimit/rate-limiter.js';
export type { Decision, RateLimiter } from './ratelimit/rate-limiter.js';
export { SlidingWindowCounter } from './ratelimit/sliding-window-counter.js';
export type { SlidingWindowCounterOptions } from './ratelimit/sliding-window-counter.js';
export { TokenBucket } from './ratelimit/token-bucket.js';
export type { TokenBucketOptions } from './ratelimit/token-bucket.js';
export { retry } from './retry/retry.js';
export type { RetryEvent, RetryFilter, RetryOptions } from './retry/retry.js';
export { RetryBudget } from './retry/retry-budget.js';
export type { RetryBudgetOptions } from './retry/retry-budget.js';
export { withCall } from './shared/lazy-signal-call.js';
export type { CallChanges } from './shared/lazy-signal-call.js';
export { PerKey } from './shared/per-key.js';
export type { PerKeyOptions } from './shared/per-key.js';
export { attemptTimeout, deadline } from './timeout/timeout.js';
export type { TimeoutFilter, TimeoutOptions } from './timeout/timeout.js';
export { TimeoutError } from './timeout/timeout-error.js';
export type { TimeoutScope } from './timeout/timeout-error.js';
