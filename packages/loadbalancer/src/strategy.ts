import type { Call, ServiceInstance } from '@trellis/core';

/**
 * What a strategy knows of one instance's load, for people (a status page) rather than for
 * picking: every field is undefined when the strategy does not keep it.
 */
export interface InstanceLoad {
  /**
   * The number the strategy compares between instances, lower preferred: P2C's
   * `latency × (outstanding + 1)` (2^47 + outstanding for an instance probed and not yet
   * answered), least-outstanding's count of calls in flight.
   */
  readonly score?: number;
  /** The strategy's latency estimate in ms (P2C's peak EWMA, decayed to now). */
  readonly latencyMs?: number;
  /** Calls in flight to the instance from this process, as the strategy counts them. */
  readonly outstanding?: number;
}

/**
 * The base of every load-balancing strategy (Moleculer's shape): given the instances a call may
 * go to, already filtered to healthy and routable ones, pick one.
 *
 * A strategy instance belongs to one target service; it may keep state across calls (a
 * round-robin position, latency averages). Strategies that learn from the calls they place
 * (least outstanding, peak EWMA, bounded loads) override the feedback hooks and set
 * {@link Strategy.usesFeedback}; {@link strategyFeedback} is the attempt filter that calls them.
 *
 * @example
 * class First extends Strategy {
 *   readonly name = 'first';
 *   select(instances: readonly ServiceInstance[]) { return instances[0]; }
 * }
 */
export abstract class Strategy {
  /** The name the strategy is chosen by in configuration, e.g. "round-robin". */
  abstract readonly name: string;

  /**
   * True when the strategy reads {@link attemptStarted} / {@link attemptEnded}: the feedback
   * filter of a strategy without it costs nothing.
   */
  get usesFeedback(): boolean {
    return false;
  }

  /**
   * Picks the instance for `call` among `instances`.
   * @returns the chosen instance, or undefined when `instances` is empty.
   */
  abstract select(instances: readonly ServiceInstance[], call: Call): ServiceInstance | undefined;

  /** Called when an attempt is sent to `instance`. Does nothing unless overridden. */
  attemptStarted(_instance: ServiceInstance): void {}

  /**
   * Called when that attempt ends, `durationMs` after it started. `failed` is true when it threw
   * or the instance answered with a 5xx status. Does nothing unless overridden.
   */
  attemptEnded(_instance: ServiceInstance, _durationMs: number, _failed: boolean): void {}

  /**
   * What the strategy knows of `instance`'s load, read-only; undefined when it keeps nothing
   * per instance (round robin, random, hashing) or has not seen this one. Does nothing unless
   * overridden.
   *
   * @example
   * const strategy = new P2CPeakEwma();
   * const load = strategy.describeInstance(instance); // e.g. { score: 12.5, latencyMs: 12.5, outstanding: 0 }
   */
  describeInstance(_instance: ServiceInstance): InstanceLoad | undefined {
    return undefined;
  }
}
