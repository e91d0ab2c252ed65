import type { Call, ServiceInstance } from '@trellis/core';

/**
 * The base of every load-balancing strategy (Moleculer's shape): given the instances a call may
 * go to, already filtered to healthy and routable ones, pick one.
 *
 * A strategy instance belongs to one target service; it may keep state across calls (a
 * round-robin position, latency averages).
 */
export abstract class Strategy {
  /** The name the strategy is chosen by in configuration, e.g. "round-robin". */
  abstract readonly name: string;

  /**
   * Picks the instance for `call` among `instances`.
   * @returns the chosen instance, or undefined when `instances` is empty.
   */
  abstract select(instances: readonly ServiceInstance[], call: Call): ServiceInstance | undefined;
}
