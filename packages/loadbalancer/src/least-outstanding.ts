import type { Call, ServiceInstance } from '@trellis/core';
import { freshState, InstanceTable, type InstanceState } from './instance-table.js';
import { Strategy, type InstanceLoad } from './strategy.js';

/**
 * Sends each call to the instance with the fewest calls in flight from this process. A slow
 * or stuck instance holds its calls longer, so it is offered fewer. Ties are broken by a
 * rotating starting point, so idle instances are taken in turn rather than the first always.
 *
 * Needs feedback: add {@link strategyFeedback} (or the load balancer's `feedback`) to the
 * attempt filters. Scans every instance: O(n) per pick.
 *
 * @example
 * const lb = new LoadBalancer({ strategy: new LeastOutstanding() });
 */
export class LeastOutstanding extends Strategy {
  readonly name = 'least-outstanding';
  readonly #table = new InstanceTable<InstanceState>(freshState);
  #start = 0;

  override get usesFeedback(): boolean {
    return true;
  }

  select(instances: readonly ServiceInstance[], _call?: Call): ServiceInstance | undefined {
    const n = instances.length;
    if (n === 0) return undefined;
    const start = this.#start < n ? this.#start : 0;
    this.#start = start + 1;
    const states = this.#table.statesFor(instances);
    let best = start;
    let fewest = Infinity;
    for (let k = 0, i = start; k < n; k++, i = i + 1 < n ? i + 1 : 0) {
      const outstanding = (states[i] as InstanceState).outstanding;
      if (outstanding < fewest) {
        fewest = outstanding;
        best = i;
      }
    }
    return instances[best];
  }

  override attemptStarted(instance: ServiceInstance): void {
    this.#table.get(instance).outstanding++;
  }

  override attemptEnded(instance: ServiceInstance, _durationMs: number, _failed: boolean): void {
    const state = this.#table.find(instance);
    if (state !== undefined && state.outstanding > 0) state.outstanding--;
  }

  /** Its score is its count of calls in flight. */
  override describeInstance(instance: ServiceInstance): InstanceLoad | undefined {
    const state = this.#table.find(instance);
    return state === undefined ? undefined : { score: state.outstanding, outstanding: state.outstanding };
  }

  /** Calls in flight to `instance`, as this strategy counts them. */
  outstanding(instance: ServiceInstance): number {
    return this.#table.find(instance)?.outstanding ?? 0;
  }
}
