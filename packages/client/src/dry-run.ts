import type { Call, ServiceInstance, Telemetry } from '@trellis/core';
import type { Router } from '@trellis/loadbalancer';
import type { FaultInjector } from './fault-injection.js';

/**
 * What a dry run has counted since it was set, from `ServiceClient.describe()`: a fixed set
 * of counters, whatever the traffic.
 */
export interface DryRunStatus {
  /** The candidate's version, when given. */
  readonly version: number | undefined;
  /** Attempts the candidate was evaluated on. */
  readonly attempts: number;
  /** Of those, how many one of the candidate's routes (or its default) applied to. */
  readonly routed: number;
  /** Of those, how many went live to an instance outside the candidate's destination ("would route elsewhere"). */
  readonly routedElsewhere: number;
  /** Attempts a candidate fault rule matched. */
  readonly faultMatched: number;
  /** Attempts the candidate's faults would have delayed. */
  readonly delayed: number;
  /** Attempts the candidate's faults would have aborted. */
  readonly aborted: number;
}

/**
 * Candidate rules evaluated beside the live ones on every attempt, by the "select" stage once
 * the live rules have picked the instance: it reads the call and the pick, draws from its own
 * random source, and changes nothing about the attempt.
 */
export class DryRun {
  readonly version: number | undefined;
  readonly #service: string;
  readonly #router: Router | undefined;
  readonly #faults: FaultInjector | undefined;
  readonly #live: FaultInjector | undefined;
  readonly #random: () => number;
  readonly #telemetry: Telemetry;
  #attempts = 0;
  #routed = 0;
  #routedElsewhere = 0;
  #faultMatched = 0;
  #delayed = 0;
  #aborted = 0;

  constructor(options: {
    readonly service: string;
    readonly version: number | undefined;
    /** The candidate's routing, compiled with the dry run's random source; undefined when the client has no load balancer of its own. */
    readonly router: Router | undefined;
    /** The candidate's faults; undefined when the client has no fault-injection stage of its own. */
    readonly faults: FaultInjector | undefined;
    /** The live fault-injection stage, to name the live rule beside the candidate's. */
    readonly live: FaultInjector | undefined;
    readonly random: () => number;
    readonly telemetry: Telemetry;
  }) {
    this.#service = options.service;
    this.version = options.version;
    this.#router = options.router;
    this.#faults = options.faults;
    this.#live = options.live;
    this.#random = options.random;
    this.#telemetry = options.telemetry;
  }

  /** Evaluates the candidate on one attempt that the live rules sent to `instance`, chosen among `candidates`. */
  observe(
    call: Call,
    attempt: number,
    instance: ServiceInstance,
    candidates: readonly ServiceInstance[],
    liveRoute: string | undefined,
  ): void {
    this.#attempts++;
    const router = this.#router;
    if (router !== undefined) {
      const allowed = router.route(candidates, call);
      const route = router.lastRoute;
      if (route !== undefined) this.#routed++;
      if (!allowed.includes(instance)) {
        this.#routedElsewhere++;
        if (this.#telemetry.enabled) {
          this.#telemetry.emit({
            type: 'dry-run',
            effect: 'route',
            service: this.#service,
            version: this.version,
            attempt,
            instance: instance.id,
            live: liveRoute,
            candidate: route,
          });
        }
      }
    }
    const decision = this.#faults?.decide(call, this.#random);
    if (decision === undefined) return;
    this.#faultMatched++;
    if (decision.delay) this.#delayed++;
    if (decision.abort) this.#aborted++;
    if ((decision.delay || decision.abort) && this.#telemetry.enabled) {
      const live = this.#live?.matching(call);
      for (const kind of ['delay', 'abort'] as const) {
        if (!decision[kind]) continue;
        this.#telemetry.emit({
          type: 'dry-run',
          effect: 'fault',
          service: this.#service,
          version: this.version,
          attempt,
          instance: instance.id,
          kind,
          live,
          candidate: decision.rule,
        });
      }
    }
  }

  status(): DryRunStatus {
    return {
      version: this.version,
      attempts: this.#attempts,
      routed: this.#routed,
      routedElsewhere: this.#routedElsewhere,
      faultMatched: this.#faultMatched,
      delayed: this.#delayed,
      aborted: this.#aborted,
    };
  }
}
