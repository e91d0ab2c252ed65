import { ConfigError, type Call, type ServiceInstance } from '@trellis/core';
import { Strategy, type InstanceLoad } from './strategy.js';

export interface ZoneAwareOptions {
  /** The caller's own zone, e.g. "eu-west-1a". */
  readonly zone: string;
  /** The strategy that picks within the chosen zone(s). */
  readonly inner: Strategy;
  /**
   * Fewest instances the caller's zone must offer to be used alone; below that, every zone is
   * used. Default 1: stay in the zone while it has any instance.
   */
  readonly minLocal?: number;
}

/**
 * Prefers instances in the caller's zone (same failure domain, no cross-zone latency or
 * transfer cost), and falls back to all zones when the caller's zone has fewer than
 * `minLocal` routable instances (none healthy there, or none deployed). Wraps another
 * strategy, which picks among the instances kept.
 *
 * @throws ConfigError (field "zone" or "minLocal") for an empty zone or a minLocal below 1.
 * @example
 * const strategy = new ZoneAware({ zone: 'eu-west-1a', inner: new P2CPeakEwma() });
 */
export class ZoneAware extends Strategy {
  readonly name = 'zone-aware';
  readonly zone: string;
  readonly #inner: Strategy;
  readonly #minLocal: number;
  // The local subset of the last list seen: discovery hands out one list per refresh, so this
  // filters once per refresh rather than once per call.
  #lastList: readonly ServiceInstance[] | undefined;
  #lastLocal: readonly ServiceInstance[] = [];

  constructor(options: ZoneAwareOptions) {
    super();
    if (typeof options.zone !== 'string' || options.zone === '') {
      throw new ConfigError('zone', 'zone-aware balancing needs the caller\'s zone, e.g. "eu-west-1a"');
    }
    const minLocal = options.minLocal ?? 1;
    if (!Number.isInteger(minLocal) || minLocal < 1) {
      throw new ConfigError('minLocal', `must be an integer >= 1, got ${minLocal}`);
    }
    this.zone = options.zone;
    this.#inner = options.inner;
    this.#minLocal = minLocal;
  }

  override get usesFeedback(): boolean {
    return this.#inner.usesFeedback;
  }

  select(instances: readonly ServiceInstance[], call: Call): ServiceInstance | undefined {
    if (instances !== this.#lastList) {
      this.#lastList = instances;
      this.#lastLocal = instances.filter((i) => i.meta.zone === this.zone);
    }
    const local = this.#lastLocal;
    return this.#inner.select(local.length >= this.#minLocal ? local : instances, call);
  }

  override attemptStarted(instance: ServiceInstance): void {
    this.#inner.attemptStarted(instance);
  }

  override attemptEnded(instance: ServiceInstance, durationMs: number, failed: boolean): void {
    this.#inner.attemptEnded(instance, durationMs, failed);
  }

  /** The inner strategy's view. */
  override describeInstance(instance: ServiceInstance): InstanceLoad | undefined {
    return this.#inner.describeInstance(instance);
  }
}
