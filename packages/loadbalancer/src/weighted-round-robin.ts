import type { Call, ServiceInstance } from '@trellis/core';
import { InstanceTable, type InstanceState } from './instance-table.js';
import { Strategy } from './strategy.js';

interface WeightState extends InstanceState {
  current: number;
}

/**
 * The weight an instance advertises: `meta.weight` when it is a finite number >= 0, else 1.
 * A weight of 0 drains an instance (no calls while another has a weight).
 */
export function weightOf(instance: ServiceInstance): number {
  const weight = instance.meta.weight;
  return Number.isFinite(weight) && weight >= 0 ? weight : 1;
}

/**
 * nginx's smooth weighted round robin: each instance gets calls in proportion to its
 * `meta.weight`, and the calls of a heavy instance are interleaved with the others instead of
 * sent in a burst (weights 5, 1, 1 give a a b a c a a, not a a a a a b c).
 *
 * Each pick adds every instance's weight to its running score, takes the highest score, and
 * subtracts the total weight from it. When every weight is 0, instances are taken in turn.
 *
 * @example
 * const strategy = new WeightedRoundRobin(); // weights from instance.meta.weight
 */
export class WeightedRoundRobin extends Strategy {
  readonly name = 'weighted-round-robin';
  readonly #table = new InstanceTable<WeightState>(() => ({ current: 0, outstanding: 0, seen: 0 }));
  #turn = 0;

  select(instances: readonly ServiceInstance[], _call?: Call): ServiceInstance | undefined {
    const states = this.#table.statesFor(instances);
    let total = 0;
    let best: ServiceInstance | undefined;
    let bestState: WeightState | undefined;
    for (let i = 0; i < instances.length; i++) {
      const instance = instances[i] as ServiceInstance;
      const state = states[i] as WeightState;
      const weight = weightOf(instance);
      state.current += weight;
      total += weight;
      if (bestState === undefined || state.current > bestState.current) {
        best = instance;
        bestState = state;
      }
    }
    if (bestState === undefined) return undefined;
    if (total === 0) {
      this.#turn = this.#turn < instances.length - 1 ? this.#turn + 1 : 0;
      return instances[this.#turn];
    }
    bestState.current -= total;
    return best;
  }
}
