import {
  CallContext,
  ConfigError,
  Emitter,
  systemClock,
  type Call,
  type Clock,
  type Event,
  type Filter,
  type HedgeSent,
  type Stage,
  type StageEnv,
} from '@trellis/core';
import { DeadlineQueue, type DeadlineEntry } from '../shared/deadline-queue.js';
import { isIdempotent } from '../shared/idempotency.js';
import { forward, type Policy } from '../shared/policy.js';
import { RetryBudget } from '../retry/retry-budget.js';
import { LatencyWindow } from './latency-window.js';

export interface HedgingOptions {
  /** Send the second attempt after this fixed delay. Without it, after the `percentile` of recent latencies. */
  readonly delayMs?: number;
  /** The latency percentile after which a call is hedged, from 0 to 1; default 0.95. */
  readonly percentile?: number;
  /** Calls recorded in the window before the percentile is trusted; default 20 (no hedging before). */
  readonly minSamples?: number;
  /** The window the percentile is taken over; default 10 000 ms. */
  readonly windowMs?: number;
  /**
   * The budget hedges draw from: each call deposits, each hedge withdraws. Default its own
   * `RetryBudget({ retryShare: 0.05, minRetriesPerSecond: 1 })`: at most 5% more load.
   */
  readonly budget?: RetryBudget;
  /** Whether a call may be sent twice; default the per-call `idempotent`, else its method or an `Idempotency-Key` header. */
  readonly idempotent?: (call: Call) => boolean;
  /** What {@link Hedging.execute}'s events name as the service; default "execute". */
  readonly service?: string;
  readonly clock?: Clock;
}

/** The plain-number fields of {@link HedgingOptions}. */
export type HedgingLimits = Pick<HedgingOptions, 'delayMs' | 'percentile' | 'minSamples' | 'windowMs'>;

/**
 * Checks the hedging fields given, with the constructor's ranges: for options arriving as data.
 * @throws ConfigError whose field is `<prefix>.<name>`, e.g. "hedging.percentile".
 * @example
 * checkHedgingLimits({ percentile: 0.99 });
 */
export function checkHedgingLimits(options: HedgingLimits, prefix = 'hedging'): void {
  const { delayMs, percentile, minSamples, windowMs } = options;
  if (delayMs !== undefined && !(Number.isFinite(delayMs) && delayMs > 0)) {
    throw new ConfigError(`${prefix}.delayMs`, `must be a positive number of milliseconds, got ${delayMs}`);
  }
  if (percentile !== undefined && !(percentile > 0 && percentile < 1)) {
    throw new ConfigError(`${prefix}.percentile`, `must be between 0 and 1, got ${percentile}`);
  }
  if (minSamples !== undefined && !(Number.isInteger(minSamples) && minSamples >= 1)) {
    throw new ConfigError(`${prefix}.minSamples`, `must be an integer >= 1, got ${minSamples}`);
  }
  if (windowMs !== undefined && !(Number.isFinite(windowMs) && windowMs > 0)) {
    throw new ConfigError(`${prefix}.windowMs`, `must be a positive number of milliseconds, got ${windowMs}`);
  }
}

/**
 * Hedged requests (Dean and Barroso, "The Tail at Scale"): when an idempotent call has not
 * answered after the `percentile` of recent latencies (or a fixed `delayMs`), a second attempt
 * is sent, to another instance than the first went to; the first answer wins and the other
 * attempt is cancelled. Hedges draw from a {@link RetryBudget}, so that they add a bounded share
 * of load. A failure is left to the retry stage: a hedge waits for slowness, not errors.
 *
 * A stage between retry and instance selection (a ServiceClient's `hedging` option), so that
 * each attempt of a race picks its own instance and the hedge reads where the first one went.
 *
 * @throws ConfigError from the constructor for an option out of range, naming it.
 * @example
 * const users = new ServiceClient({ service: 'users', discovery, hedging: { percentile: 0.95 } });
 */
export class Hedging implements Stage, Policy {
  readonly name = 'hedging';
  readonly role = 'hedging';
  readonly level = 'call';
  #percentile = 0.95;
  #minSamples = 20;
  readonly #hedged = new Emitter<HedgeSent>();
  /** A second attempt is sent. */
  readonly onHedgeSent: Event<HedgeSent> = this.#hedged.event;
  #fixedDelayMs: number | undefined;
  readonly #clock: Clock;
  #budget: RetryBudget;
  readonly #idempotent: ((call: Call) => boolean) | undefined;
  readonly #service: string;
  #windowMs = 0;
  #latencies: LatencyWindow;
  #queue: DeadlineQueue<Race<unknown>>;
  #recomputeEveryMs = 0;
  #delayMs: number | undefined;
  #recomputeAt = Number.NEGATIVE_INFINITY;
  #off = false;

  constructor(options: HedgingOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#idempotent = options.idempotent;
    this.#service = options.service ?? 'execute';
    this.#budget = options.budget ?? new RetryBudget({ retryShare: 0.05, minRetriesPerSecond: 1, clock: this.#clock });
    this.#latencies = new LatencyWindow(this.#clock, 1);
    this.#queue = new DeadlineQueue<Race<unknown>>(this.#clock);
    this.#set(options);
  }

  /** The latency percentile after which a call is hedged. */
  get percentile(): number {
    return this.#percentile;
  }

  /** Calls recorded in the window before the percentile is trusted. */
  get minSamples(): number {
    return this.#minSamples;
  }

  /** The budget hedges draw from. */
  get budget(): RetryBudget {
    return this.#budget;
  }

  /** False once {@link update} switched hedging off: calls pass straight through. */
  get enabled(): boolean {
    return !this.#off;
  }

  /**
   * Changes when calls are hedged, from the next call on, all or nothing; `false` switches
   * hedging off (calls pass straight through) until the next update. Fields left out take the
   * constructor's defaults, except `budget`, which left out keeps the one in use; the latencies
   * recorded are kept unless `windowMs` changes. A race already running finishes as it started.
   * `idempotent`, `service` and the clock stay as constructed.
   * @throws ConfigError for an option out of range, naming it; nothing changes then.
   * @example
   * const hedging = new Hedging({ delayMs: 50 });
   * hedging.update({ percentile: 0.99 });
   * hedging.update(false);
   */
  update(options: (HedgingLimits & Pick<HedgingOptions, 'budget'>) | false): void {
    if (options === false) {
      this.#off = true;
      return;
    }
    this.#set(options);
    this.#off = false;
  }

  #set(options: HedgingLimits & Pick<HedgingOptions, 'budget'>): void {
    const percentile = options.percentile ?? 0.95;
    const minSamples = options.minSamples ?? 20;
    const windowMs = options.windowMs ?? 10_000;
    checkHedgingLimits({ ...options, percentile, minSamples, windowMs });
    const changed = options.delayMs !== this.#fixedDelayMs;
    this.#percentile = percentile;
    this.#minSamples = minSamples;
    this.#fixedDelayMs = options.delayMs;
    if (options.budget !== undefined) this.#budget = options.budget;
    if (windowMs !== this.#windowMs) {
      this.#windowMs = windowMs;
      this.#latencies = new LatencyWindow(this.#clock, windowMs);
      this.#recomputeEveryMs = windowMs / 20;
    }
    // Races already queued keep their delay; new ones queue apart, so none waits behind an older, later one.
    if (changed) this.#queue = new DeadlineQueue<Race<unknown>>(this.#clock);
    this.#recomputeAt = Number.NEGATIVE_INFINITY;
  }

  /** The delay after which a call is hedged now; undefined while too few latencies are known. */
  get delayMs(): number | undefined {
    if (this.#fixedDelayMs !== undefined) return this.#fixedDelayMs;
    const now = this.#clock.now();
    if (now >= this.#recomputeAt) {
      // A percentile of the window moves slowly: reading it 20 times per window is enough.
      this.#recomputeAt = now + this.#recomputeEveryMs;
      this.#delayMs =
        this.#latencies.count >= this.#minSamples ? this.#latencies.quantile(this.#percentile) : undefined;
    }
    return this.#delayMs;
  }

  make(env: StageEnv): Filter {
    forward(env, this.onHedgeSent);
    return this.filter;
  }

  /** The HTTP filter, for a stack of your own: put it after retry and before instance selection. */
  readonly filter: Filter = (call, context, next) => {
    if (this.#off) return next(call, context);
    const idempotent = this.#idempotent?.(call) ?? context.idempotent ?? isIdempotent(call);
    return this.#race(call.service, context, idempotent, (leg) => next(call, leg));
  };

  /**
   * Runs `fn`, and once more in parallel when the first run is slow (same rule as for calls);
   * the first to succeed wins and the other's signal aborts. Only for work that may run twice.
   */
  execute<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const context = new CallContext(signal === undefined ? {} : { signal });
    return this.#race(this.#service, context, true, (leg) => fn(leg.signal as AbortSignal));
  }

  /** @internal */
  record(ms: number): void {
    if (this.#fixedDelayMs === undefined) this.#latencies.record(ms);
  }

  /** @internal */
  tryHedge(service: string, first: string | undefined): boolean {
    if (!this.#budget.tryWithdraw()) return false;
    if (this.#hedged.hasListeners) this.#hedged.emit({ type: 'hedge-sent', service, firstInstance: first });
    return true;
  }

  #race<T>(
    service: string,
    context: CallContext,
    idempotent: boolean,
    run: (leg: CallContext) => Promise<T>,
  ): Promise<T> {
    this.#budget.deposit();
    const started = this.#clock.now();
    const delay = idempotent ? this.delayMs : undefined;
    if (delay === undefined) {
      return run(context).then((value) => {
        this.record(this.#clock.now() - started);
        return value;
      });
    }
    return new Promise<T>((resolve, reject) => {
      const queue = this.#queue;
      const race = new Race<T>(this, queue, this.#clock, service, context, run, started + delay, resolve, reject);
      queue.add(race as Race<unknown>);
      race.start();
    });
  }
}

/** A hedged call: its legs (forked contexts, each with its own signal and instance), and when the second starts. */
class Race<T> implements DeadlineEntry {
  readonly deadline: number;
  prev: DeadlineEntry | undefined;
  next: DeadlineEntry | undefined;
  readonly #owner: Hedging;
  readonly #queue: DeadlineQueue<Race<unknown>>;
  readonly #clock: Clock;
  readonly #service: string;
  readonly #context: CallContext;
  readonly #run: (leg: CallContext) => Promise<T>;
  readonly #resolve: (value: T) => void;
  readonly #reject: (error: unknown) => void;
  readonly #started: number;
  readonly #legs: CallContext[] = [];
  #running = 0;
  #done = false;

  constructor(
    owner: Hedging,
    queue: DeadlineQueue<Race<unknown>>,
    clock: Clock,
    service: string,
    context: CallContext,
    run: (leg: CallContext) => Promise<T>,
    deadline: number,
    resolve: (value: T) => void,
    reject: (error: unknown) => void,
  ) {
    this.#owner = owner;
    this.#queue = queue;
    this.#clock = clock;
    this.#service = service;
    this.#context = context;
    this.#run = run;
    this.deadline = deadline;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#started = clock.now();
  }

  start(): void {
    this.#send(this.#context.avoid);
  }

  /** The hedging delay passed with no answer: send the second leg, if the budget allows. */
  expire(): void {
    // The instance selection stage wrote the first leg's instance into its context.
    const first = this.#legs[0]?.instance?.id;
    if (this.#done || this.#context.aborted || !this.#owner.tryHedge(this.#service, first)) return;
    this.#send(first === undefined ? this.#context.avoid : new Set(this.#context.avoid).add(first));
  }

  #send(avoid: ReadonlySet<string> | undefined): void {
    const leg = this.#context.forkCancellable();
    leg.avoid = avoid;
    this.#legs.push(leg);
    this.#running++;
    let sent: Promise<T>;
    try {
      sent = this.#run(leg);
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(
      (value) => this.#won(leg, value),
      (error: unknown) => this.#lost(error),
    );
  }

  #won(winner: CallContext, value: T): void {
    if (this.#done) return;
    this.#end();
    this.#owner.record(this.#clock.now() - this.#started);
    for (const leg of this.#legs) {
      if (leg === winner) leg.detach();
      else leg.cancel(new Error('another hedged attempt answered first'));
    }
    this.#resolve(value);
  }

  #lost(error: unknown): void {
    this.#running--;
    // Wait for a leg still running. Once none is, fail: a failure is for the retry stage.
    if (this.#done || this.#running > 0) return;
    this.#end();
    for (const leg of this.#legs) leg.detach();
    this.#reject(error);
  }

  #end(): void {
    this.#done = true;
    this.#queue.remove(this as Race<unknown>);
  }
}
