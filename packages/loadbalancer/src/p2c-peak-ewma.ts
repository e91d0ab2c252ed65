import { ConfigError, systemClock, type Call, type Clock, type ServiceInstance } from '@trellis/core';
import { InstanceTable, type InstanceState } from './instance-table.js';
import { Strategy, type InstanceLoad } from './strategy.js';

export interface P2CPeakEwmaOptions {
  /** Where time comes from, for the decay of the latency estimate; default the system clock. */
  readonly clock?: Clock;
  /** A number in [0, 1); default `Math.random`. Tests pass a seeded generator. */
  readonly random?: () => number;
  /**
   * Mean lifetime of a latency observation, in ms: a latency peak loses 63% of its weight in
   * this time, so a slow instance is offered calls again after a while. Default 10 000
   * (Finagle's and Linkerd's).
   */
  readonly decayMs?: number;
}

interface EwmaState extends InstanceState {
  /** Peak-sensitive moving average of the latency, ms; 0 until the first observation. */
  cost: number;
  /** When `cost` was last decayed. */
  stamp: number;
}

// Finagle's penalty for an instance with a call in flight and no latency seen yet: one probe
// at a time until it has answered once.
const penalty = 2 ** 47;

/**
 * Power of two choices over peak-EWMA latency (Finagle's and Linkerd's default): picks two
 * distinct instances at random and sends the call to the one with the lower
 * `latency estimate × (calls in flight + 1)`. The estimate jumps at once to any slower
 * observation and decays towards faster ones with {@link P2CPeakEwmaOptions.decayMs}, so a slow
 * instance is avoided quickly and trusted again cautiously. Two random choices, not the global
 * best, keep many callers from all rushing to the same fastest instance. O(1) per pick.
 *
 * A failed attempt never lowers an instance's estimate (a fast error must not look like a fast
 * instance); ejecting a failing instance is the breaker's job.
 *
 * Needs feedback: add the load balancer's `feedback` (or {@link strategyFeedback}) filter.
 *
 * @throws ConfigError (field "decayMs") when decayMs is not a positive number.
 * @example
 * const strategy = new P2CPeakEwma({ clock, random: seeded(1) });
 */
export class P2CPeakEwma extends Strategy {
  readonly name = 'p2c-peak-ewma';
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #tau: number;
  readonly #table: InstanceTable<EwmaState>;

  constructor(options: P2CPeakEwmaOptions = {}) {
    super();
    const decayMs = options.decayMs ?? 10_000;
    if (!(decayMs > 0) || !Number.isFinite(decayMs)) {
      throw new ConfigError('decayMs', `must be a positive number of milliseconds, got ${decayMs}`);
    }
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#tau = decayMs;
    const clock = this.#clock;
    this.#table = new InstanceTable<EwmaState>(() => ({ cost: 0, stamp: clock.now(), outstanding: 0, seen: 0 }));
  }

  override get usesFeedback(): boolean {
    return true;
  }

  select(instances: readonly ServiceInstance[], _call?: Call): ServiceInstance | undefined {
    const n = instances.length;
    if (n < 2) return instances[0];
    const i = Math.floor(this.#random() * n);
    let j = Math.floor(this.#random() * (n - 1));
    if (j >= i) j++;
    const states = this.#table.statesFor(instances);
    const now = this.#clock.now();
    return this.#load(states[i] as EwmaState, now) <= this.#load(states[j] as EwmaState, now)
      ? instances[i]
      : instances[j];
  }

  override attemptStarted(instance: ServiceInstance): void {
    this.#table.get(instance).outstanding++;
  }

  override attemptEnded(instance: ServiceInstance, durationMs: number, failed: boolean): void {
    const state = this.#table.find(instance);
    if (state === undefined) return;
    if (state.outstanding > 0) state.outstanding--;
    const now = this.#clock.now();
    const rtt = Math.max(0, durationMs);
    this.#observe(state, failed ? Math.max(rtt, state.cost) : rtt, now);
  }

  /** The current latency estimate of `instance` in ms (decayed to now), or 0 if none yet. */
  estimate(instance: ServiceInstance): number {
    const state = this.#table.find(instance);
    if (state === undefined) return 0;
    this.#observe(state, 0, this.#clock.now());
    return state.cost;
  }

  /** The instance's score (the load two picks compare), its latency estimate and its calls in flight. */
  override describeInstance(instance: ServiceInstance): InstanceLoad | undefined {
    const state = this.#table.find(instance);
    if (state === undefined) return undefined;
    const score = this.#load(state, this.#clock.now());
    return { score, latencyMs: state.cost, outstanding: state.outstanding };
  }

  // Finagle's PeakEwma: the time between observations sets the weight, since observations
  // arrive unevenly; a peak replaces the average at once.
  #observe(state: EwmaState, rtt: number, now: number): void {
    const elapsed = now - state.stamp;
    const w = elapsed > 0 ? Math.exp(-elapsed / this.#tau) : 1;
    state.cost = rtt > state.cost ? rtt : state.cost * w + rtt * (1 - w);
    if (elapsed > 0) state.stamp = now;
  }

  #load(state: EwmaState, now: number): number {
    this.#observe(state, 0, now);
    if (state.cost === 0 && state.outstanding !== 0) return penalty + state.outstanding;
    return state.cost * (state.outstanding + 1);
  }
}
