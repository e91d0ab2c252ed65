import { ConfigError, type Clock } from '@trellis/core';
import { ConsistentHash } from './consistent-hash.js';
import type { HashKey } from './hash-keys.js';
import { LeastOutstanding } from './least-outstanding.js';
import { P2CPeakEwma } from './p2c-peak-ewma.js';
import { RandomStrategy } from './random.js';
import { RoundRobin } from './round-robin.js';
import type { Strategy } from './strategy.js';
import { WeightedRoundRobin } from './weighted-round-robin.js';
import { ZoneAware } from './zone-aware.js';

/** What strategies built by name may need; each takes the options it uses and ignores the rest. */
export interface StrategyOptions {
  /** For peak EWMA's decay; default the system clock. */
  readonly clock?: Clock;
  /** A number in [0, 1) for random and P2C; default `Math.random`. */
  readonly random?: () => number;
  /** For consistent-hash: what a call is hashed by; default its path. */
  readonly key?: HashKey;
  /** For zone-aware: the caller's zone (required). */
  readonly zone?: string;
  /** For zone-aware: the strategy within the zone, by name; default "p2c-peak-ewma". */
  readonly inner?: Exclude<StrategyName, 'zone-aware'>;
}

function optional<T>(key: string, value: T | undefined): Record<string, T> {
  return value === undefined ? {} : { [key]: value };
}

const plain = {
  'round-robin': () => new RoundRobin(),
  random: (o: StrategyOptions) => new RandomStrategy(optional('random', o.random)),
  'weighted-round-robin': () => new WeightedRoundRobin(),
  'least-outstanding': () => new LeastOutstanding(),
  'p2c-peak-ewma': (o: StrategyOptions) =>
    new P2CPeakEwma({ ...optional('clock', o.clock), ...optional('random', o.random) }),
  'consistent-hash': (o: StrategyOptions) => new ConsistentHash(optional('key', o.key)),
} satisfies Record<string, (options: StrategyOptions) => Strategy>;

const strategies = {
  ...plain,
  'zone-aware': (o: StrategyOptions): Strategy => {
    if (o.zone === undefined) throw new ConfigError('zone', 'strategy "zone-aware" needs the caller\'s zone');
    const inner: string = o.inner ?? 'p2c-peak-ewma';
    if (!Object.hasOwn(plain, inner)) throw new ConfigError('inner', `unknown strategy "${inner}" inside zone-aware`);
    return new ZoneAware({ zone: o.zone, inner: plain[inner as keyof typeof plain](o) });
  },
} satisfies Record<string, (options: StrategyOptions) => Strategy>;

/** Names accepted by {@link createStrategy}. */
export type StrategyName = keyof typeof strategies;

/** The names of the built-in strategies. */
export const strategyNames = Object.keys(strategies) as StrategyName[];

/** The strategy a load balancer uses when none is named: power of two choices over peak EWMA. */
export const defaultStrategyName: StrategyName = 'p2c-peak-ewma';

/**
 * A new strategy chosen by name, as configuration names it.
 * @throws ConfigError (`INVALID_CONFIG`, field "strategy") for an unknown name; field "zone"
 *   for "zone-aware" without a zone.
 * @example
 * const strategy = createStrategy('p2c-peak-ewma', { clock });
 */
export function createStrategy(name: string, options: StrategyOptions = {}): Strategy {
  if (!Object.hasOwn(strategies, name)) {
    throw new ConfigError('strategy', `unknown strategy "${name}"; known: ${strategyNames.join(', ')}`);
  }
  return strategies[name as StrategyName](options);
}
