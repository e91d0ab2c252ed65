import { ConfigError } from '@trellis/core';
import { RoundRobin } from './round-robin.js';
import type { Strategy } from './strategy.js';

const strategies = {
  'round-robin': () => new RoundRobin(),
} satisfies Record<string, () => Strategy>;

/** Names accepted by {@link createStrategy}. */
export type StrategyName = keyof typeof strategies;

/** The names of the built-in strategies. */
export const strategyNames = Object.keys(strategies) as StrategyName[];

/**
 * A new strategy chosen by name, as configuration names it.
 * @throws ConfigError (`INVALID_CONFIG`, field "strategy") for an unknown name.
 * @example
 * const strategy = createStrategy('round-robin');
 */
export function createStrategy(name: string): Strategy {
  if (!Object.hasOwn(strategies, name)) {
    throw new ConfigError('strategy', `unknown strategy "${name}"; known: ${strategyNames.join(', ')}`);
  }
  return strategies[name as StrategyName]();
}
