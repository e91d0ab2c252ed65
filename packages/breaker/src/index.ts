export { CircuitBreaker } from './circuit-breaker.js';
export type {
  CircuitBreakerConfig,
  CircuitBreakerOptions,
  CircuitSnapshot,
  CircuitState,
  CircuitStateChange,
} from './circuit-breaker.js';
export { CircuitBreakerRegistry } from './circuit-breaker-registry.js';
export type { CircuitBreakerRegistryOptions } from './circuit-breaker-registry.js';
export { CircuitOpenError } from './circuit-open-error.js';
export { instanceCircuitBreaker, isServerErrorReply, isTargetError, serviceCircuitBreaker } from './breaker-filter.js';
export type { CircuitBreakerFilterOptions } from './breaker-filter.js';
export { defaultFallbackCodes, fallback, fallbackHeader, fallbackInstanceId } from './fallback.js';
export type { FallbackAnswer, FallbackHandler, FallbackOptions } from './fallback.js';
