import {
  Emitter,
  systemClock,
  ConfigError,
  type Call,
  type Clock,
  type Filter,
  type InstanceHealth,
  type ServiceInstance,
} from '@trellis/core';
import { createStrategy, defaultStrategyName, type StrategyName } from './create-strategy.js';
import { Router } from './router.js';
import type { RoutingRules } from './routing-rules.js';
import { Strategy, type InstanceLoad } from './strategy.js';
import { reportTo } from './strategy-feedback.js';
import { weightOf } from './weighted-round-robin.js';

export interface LoadBalancerOptions {
  /** A strategy, or its name; default "p2c-peak-ewma". */
  readonly strategy?: Strategy | StrategyName;
  /** Routing rules applied before the strategy; default none (every instance). */
  readonly rules?: RoutingRules;
  /** This process's own service name, for routes that match on `caller`. */
  readonly caller?: string;
  /** This process's zone, for a strategy named "zone-aware". */
  readonly zone?: string;
  /** Which instances a breaker or outlier detection has ejected; default none is. */
  readonly health?: InstanceHealth;
  /**
   * Share of a destination's instances, from 0 to 1, below which the ejected ones are used
   * too (Envoy's panic threshold). Default 0: only when every instance is ejected.
   */
  readonly panicThreshold?: number;
  /**
   * Time for the feedback filter's durations, and for a strategy built here by name (peak
   * EWMA's decay); a strategy passed as an object keeps its own. Default the system clock.
   */
  readonly clock?: Clock;
  /** A number in [0, 1) for weighted splits and random strategies; default `Math.random`. */
  readonly random?: () => number;
}

/** Emitted when a load balancer enters or leaves panic. */
export interface PanicChange {
  /** True when entering panic: calls now go to ejected instances too. */
  readonly panicking: boolean;
  /** Instances of the destination of the call that changed the state. */
  readonly instances: number;
  /** Of those, how many were ejected. */
  readonly ejected: number;
}

/**
 * Picks the instance for each call of one target service: routing rules choose the subset the
 * call may go to, ejected instances are skipped (unless too few remain: panic, use them all
 * rather than fail), and the strategy picks among the rest.
 *
 * A LoadBalancer is itself a {@link Strategy}, so it goes where one goes (a ServiceClient's
 * `strategy`, whose instance selection stage reports each attempt to it so that the strategy
 * learns latencies and calls in flight).
 *
 * @throws ConfigError for invalid rules (naming the field), an unknown strategy name, or a
 *   panic threshold outside [0, 1].
 * @example
 * const lb = new LoadBalancer({ caller: 'forum', health: breakers, rules: canaryRules });
 * const users = new ServiceClient({ service: 'users', discovery, strategy: lb });
 * lb.update(parseRoutingRules(jsonFromKv)); // all or nothing
 */
export class LoadBalancer extends Strategy {
  /** The attempt filter that reports each attempt's start, end and duration to the strategy (the one in use when the attempt started). */
  readonly feedback: Filter;
  #strategy: Strategy;
  readonly #clock: Clock;
  readonly #random: (() => number) | undefined;
  readonly #zone: string | undefined;
  readonly #router: Router;
  readonly #health: InstanceHealth | undefined;
  readonly #panicThreshold: number;
  readonly #panic = new Emitter<PanicChange>();
  #panicking = false;

  /** Fires when calls start going to ejected instances (panic) and when they stop. */
  readonly onPanic = this.#panic.event;

  constructor(options: LoadBalancerOptions = {}) {
    super();
    const panicThreshold = options.panicThreshold ?? 0;
    if (!(panicThreshold >= 0 && panicThreshold <= 1)) {
      throw new ConfigError('panicThreshold', `must be a number from 0 to 1, got ${panicThreshold}`);
    }
    const clock = options.clock ?? systemClock;
    this.#clock = clock;
    this.#random = options.random;
    this.#zone = options.zone;
    this.#strategy = this.#make(options.strategy ?? defaultStrategyName);
    this.#router = new Router(options.rules, {
      ...(options.caller === undefined ? {} : { caller: options.caller }),
      ...(options.random === undefined ? {} : { random: options.random }),
    });
    this.#health = options.health;
    this.#panicThreshold = panicThreshold;
    this.feedback = (call, context, next) => {
      const strategy = this.#strategy;
      return strategy.usesFeedback ? reportTo(strategy, clock, call, context, next) : next(call, context);
    };
  }

  /** The name of the strategy in use, e.g. "p2c-peak-ewma". */
  get name(): string {
    return this.#strategy.name;
  }

  /** The strategy that picks among the routed, healthy instances. */
  get strategy(): Strategy {
    return this.#strategy;
  }

  /**
   * Picks with another strategy from the next call on, keeping the routing rules, the health
   * (ejected instances stay ejected) and the panic state. A name makes a new strategy with the
   * load balancer's clock, random source and zone; an object is used as it is (give back an
   * earlier one to take up its learnt state again). An attempt in flight reports its end to the
   * strategy it started on, when the caller holds that strategy (a ServiceClient does).
   * @throws ConfigError (field "strategy", or "zone" for "zone-aware" without one) for a name
   *   it cannot make; the strategy in use stays.
   * @example
   * const lb = new LoadBalancer({ strategy: 'round-robin' });
   * lb.setStrategy('least-outstanding');
   */
  setStrategy(strategy: Strategy | StrategyName): void {
    this.#strategy = this.#make(strategy);
  }

  #make(strategy: Strategy | StrategyName): Strategy {
    if (typeof strategy !== 'string') return strategy;
    return createStrategy(strategy, {
      clock: this.#clock,
      ...(this.#random === undefined ? {} : { random: this.#random }),
      ...(this.#zone === undefined ? {} : { zone: this.#zone }),
    });
  }

  /** The routing rules in force. */
  get rules(): RoutingRules {
    return this.#router.rules;
  }

  /** The route the last pick took (see {@link Router.lastRoute}). */
  get lastRoute(): string | undefined {
    return this.#router.lastRoute;
  }

  /** True while the last pick had to use ejected instances. */
  get panicking(): boolean {
    return this.#panicking;
  }

  override get usesFeedback(): boolean {
    return this.#strategy.usesFeedback;
  }

  /**
   * Replaces the routing rules, all or nothing.
   * @throws ConfigError naming the first invalid field; the rules in force stay unchanged.
   */
  update(rules: RoutingRules): void {
    this.#router.update(rules);
  }

  /**
   * The instance for `call` among `instances` (the service's instances, minus any the call
   * must avoid), or undefined when the call's destination has none.
   */
  select(instances: readonly ServiceInstance[], call: Call): ServiceInstance | undefined {
    const routed = this.#router.route(instances, call);
    if (routed.length === 0) return undefined;
    const serving = withoutDrained(routed);
    const candidates = this.#health === undefined ? serving : this.#healthy(serving, this.#health);
    return this.#strategy.select(candidates, call);
  }

  override attemptStarted(instance: ServiceInstance): void {
    this.#strategy.attemptStarted(instance);
  }

  override attemptEnded(instance: ServiceInstance, durationMs: number, failed: boolean): void {
    this.#strategy.attemptEnded(instance, durationMs, failed);
  }

  /** The strategy's view. */
  override describeInstance(instance: ServiceInstance): InstanceLoad | undefined {
    return this.#strategy.describeInstance(instance);
  }

  #healthy(routed: readonly ServiceInstance[], health: InstanceHealth): readonly ServiceInstance[] {
    // No array is built while nothing is ejected, the common case.
    let kept: ServiceInstance[] | undefined;
    for (let i = 0; i < routed.length; i++) {
      const instance = routed[i] as ServiceInstance;
      if (health.isEjected(instance)) {
        kept ??= routed.slice(0, i);
      } else if (kept !== undefined) {
        kept.push(instance);
      }
    }
    if (kept === undefined) {
      if (this.#panicking) this.#setPanic(false, routed.length, 0);
      return routed;
    }
    if (kept.length === 0 || kept.length < this.#panicThreshold * routed.length) {
      if (!this.#panicking) this.#setPanic(true, routed.length, routed.length - kept.length);
      return routed;
    }
    if (this.#panicking) this.#setPanic(false, routed.length, routed.length - kept.length);
    return kept;
  }

  #setPanic(panicking: boolean, instances: number, ejected: number): void {
    this.#panicking = panicking;
    if (this.#panic.hasListeners) this.#panic.emit({ panicking, instances, ejected });
  }
}

// An instance advertising a weight of 0 is draining: it gets no new calls, whatever the
// strategy, while another instance of the destination has a weight (if all drain, all serve).
// No array is built while none drains, the common case.
function withoutDrained(routed: readonly ServiceInstance[]): readonly ServiceInstance[] {
  let kept: ServiceInstance[] | undefined;
  for (let i = 0; i < routed.length; i++) {
    const instance = routed[i] as ServiceInstance;
    if (weightOf(instance) === 0) {
      kept ??= routed.slice(0, i);
    } else if (kept !== undefined) {
      kept.push(instance);
    }
  }
  return kept === undefined || kept.length === 0 ? routed : kept;
}
