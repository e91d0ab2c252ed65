export { compileCallMatch, callMatchSchema, stringMatchSchema } from './call-match.js';
export type { CallMatch, CallMatcher, CompileMatchOptions, HeaderMatch, StringMatch } from './call-match.js';
export { ConsistentHash } from './consistent-hash.js';
export type { ConsistentHashOptions } from './consistent-hash.js';
export { createStrategy, defaultStrategyName, strategyNames } from './create-strategy.js';
export type { StrategyName, StrategyOptions } from './create-strategy.js';
export { hashKeys } from './hash-keys.js';
export type { HashKey } from './hash-keys.js';
export { LeastOutstanding } from './least-outstanding.js';
export { LoadBalancer } from './load-balancer.js';
export type { LoadBalancerOptions, PanicChange } from './load-balancer.js';
export { P2CPeakEwma } from './p2c-peak-ewma.js';
export type { P2CPeakEwmaOptions } from './p2c-peak-ewma.js';
export { RandomStrategy } from './random.js';
export type { RandomOptions } from './random.js';
export { RoundRobin } from './round-robin.js';
export { Router } from './router.js';
export type { RouterOptions } from './router.js';
export {
  destinationSchema,
  maxRoutes,
  parseRoutingRules,
  routeSchema,
  routingRulesSchema,
  subsetSchema,
} from './routing-rules.js';
export type { Destination, Route, RoutingRules, Subset, WeightedSubset } from './routing-rules.js';
export { Strategy } from './strategy.js';
export { strategyFeedback } from './strategy-feedback.js';
export { WeightedRoundRobin, weightOf } from './weighted-round-robin.js';
export { ZoneAware } from './zone-aware.js';
export type { ZoneAwareOptions } from './zone-aware.js';
