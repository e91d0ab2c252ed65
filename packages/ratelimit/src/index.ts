export { ClusterRateLimiter } from './cluster-rate-limiter.js';
export type { ClusterRateLimiterLogger, ClusterRateLimiterOptions } from './cluster-rate-limiter.js';
