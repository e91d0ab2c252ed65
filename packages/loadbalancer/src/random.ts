import type { Call, ServiceInstance } from '@trellis/core';
import { Strategy } from './strategy.js';

export interface RandomOptions {
  /** A number in [0, 1); default `Math.random`. Tests pass a seeded generator. */
  readonly random?: () => number;
}

/**
 * Picks an instance uniformly at random. Stateless, so many processes calling one service
 * spread evenly without coordinating.
 *
 * @example
 * const strategy = new RandomStrategy({ random: seeded(42) });
 */
export class RandomStrategy extends Strategy {
  readonly name = 'random';
  readonly #random: () => number;

  constructor(options: RandomOptions = {}) {
    super();
    this.#random = options.random ?? Math.random;
  }

  select(instances: readonly ServiceInstance[], _call?: Call): ServiceInstance | undefined {
    return instances[Math.floor(this.#random() * instances.length)];
  }
}
