import type { Call, ServiceInstance } from '@trellis/core';
import { Strategy } from './strategy.js';

/**
 * Takes the instances in turn. When the list changes between calls, the position carries on
 * from where it was, wrapping to the start when the list got shorter.
 *
 * @example
 * const rr = new RoundRobin();
 * rr.select([a, b], call); // a
 * rr.select([a, b], call); // b
 */
export class RoundRobin extends Strategy {
  readonly name = 'round-robin';
  #next = 0;

  select(instances: readonly ServiceInstance[], _call?: Call): ServiceInstance | undefined {
    if (instances.length === 0) return undefined;
    const index = this.#next < instances.length ? this.#next : 0;
    this.#next = index + 1;
    return instances[index];
  }
}
