export { checkCircuitBreakerConfig, CircuitBreaker } from './breaker/circuit-breaker.js';
export type {
  CircuitBreakerConfig,
  CircuitBreakerLimits,
  CircuitBreakerOptions,
  CircuitSnapshot,
  SavedCircuitState,
} from './breaker/circuit-breaker.js';
export { CircuitBreakerRegistry } from './breaker/circuit-breaker-registry.js';
export type { CircuitBreakerRegistryOptions } from './breaker/circuit-breaker-registry.js';
export { CircuitOpenError } from './breaker/circuit-open-error.js';
export type { CircuitOpenErrorOptions, CircuitRefusal } from './breaker/circuit-open-error.js';
export {
  instanceCircuitBreaker,
  isServerErrorReply,
  isTargetError,
  serviceCircuitBreaker,
} from './breaker/breaker-filter.js';
export type { CircuitBreakerFilterOptions } from './breaker/breaker-filter.js';
export { Bulkhead } from './bulkhead/bulkhead.js';
export type { BulkheadOptions } from './bulkhead/bulkhead.js';
export { BulkheadFullError } from './bulkhead/bulkhead-full-error.js';
export { ConcurrencyLimit } from './bulkhead/concurrency-limit.js';
export type { ConcurrencyLimitOptions } from './bulkhead/concurrency-limit.js';
export { defaultFallbackCodes, Fallback, fallbackHeader, fallbackInstanceId } from './fallback/fallback.js';
export type { FallbackAnswer, FallbackHandler, FallbackOptions } from './fallback/fallback.js';
export { checkHedgingLimits, Hedging } from './hedging/hedging.js';
export type { HedgingLimits, HedgingOptions } from './hedging/hedging.js';
export { RateLimit } from './ratelimit/rate-limit.js';
export type { RateLimitOptions } from './ratelimit/rate-limit.js';
export { RateLimitedError } from './ratelimit/rate-limited-error.js';
export type { AnyRateLimiter, AsyncRateLimiter, RateLimiter } from './ratelimit/rate-limiter.js';
export { SlidingWindowCounter } from './ratelimit/sliding-window-counter.js';
export type { SlidingWindowCounterOptions } from './ratelimit/sliding-window-counter.js';
export { TokenBucket } from './ratelimit/token-bucket.js';
export type { TokenBucketOptions } from './ratelimit/token-bucket.js';
export { checkRetryLimits, Retry } from './retry/retry.js';
export type { RetryLimits, RetryOptions } from './retry/retry.js';
export { checkRetryBudgetOptions, RetryBudget } from './retry/retry-budget.js';
export type { RetryBudgetOptions } from './retry/retry-budget.js';
export { isPendingDecision } from './shared/decision.js';
export type { Decision } from './shared/decision.js';
export type { LimiterChoice } from './shared/limiter-choice.js';
export { PerKey } from './shared/per-key.js';
export type { PerKeyOptions } from './shared/per-key.js';
export type { Policy } from './shared/policy.js';
export { checkTimeoutMs, Deadline, deadline, Timeout } from './timeout/timeout.js';
export type { DeadlineOptions, TimeoutOptions } from './timeout/timeout.js';
export { TimeoutError } from './timeout/timeout-error.js';
export type { TimeoutScope } from './timeout/timeout-error.js';
