export { createStrategy, strategyNames } from './create-strategy.js';
export type { StrategyName } from './create-strategy.js';
export { RoundRobin } from './round-robin.js';
export { Strategy } from './strategy.js';
