import {
  ConfigError,
  Emitter,
  systemClock,
  type Attempt,
  type Call,
  type Clock,
  type Event,
  type Filter,
  type Reply,
  type Service,
} from '@trellis/core';
import { DeadlineQueue, type DeadlineEntry } from '../shared/deadline-queue.js';
import { isIdempotent } from '../shared/idempotency.js';
import { LatencyWindow } from './latency-window.js';
import { ChildSignal, LazySignalCall, type SignalSource } from '../shared/lazy-signal-call.js';
import { RetryBudget } from '../retry/retry-budget.js';

/** What Hedging tells its listeners when it sends a second attempt. */
export interface HedgeEvent {
  readonly service: string;
  /** The instance of the slow first attempt, when known. */
  readonly firstInstance: string | undefined;
}

export interface HedgingOptions {
  /** Send the second attempt after this fixed delay. Without it, after the `percentile` of recent latencies. */
  readonly delayMs?: number;
  /** The latency percentile after which a call is hedged; default 0.95. */
  readonly percentile?: number;
  /** Calls recorded in the window before the percentile is trusted; default 20 (no hedging before). */
  readonly minSamples?: number;
  /** The window the percentile is taken over; default 10 000 ms. */
  readonly windowMs?: number;
  /**
   * The budget hedges draw from: each call deposits, each hedge withdraws. Default its own
   * `RetryBudget({ percentCanRetry: 0.05, minRetriesPerSecond: 1 })`: at most 5% more load.
   */
  readonly budget?: RetryBudget;
  /** Whether a call may be sent twice; default an idempotent method or an `Idempotency-Key` header. */
  readonly idempotent?: (call: Call) => boolean;
  readonly clock?: Clock;
}

/**
 * Hedged requests (Dean and Barroso, "The Tail at Scale"): when an idempotent call has not
 * answered after the `percentile` of recent latencies (or a fixed `delayMs`), a second attempt
 * is sent, to another instance; the first answer wins and the other attempt is cancelled.
 * Hedges draw from a {@link RetryBudget}, so that they add a bounded share of load.
 *
 * Two filters: `filter` among a ServiceClient's call filters (inside `retry()`), and
 * `attemptFilter` first among its attempt filters, where it learns which instance the first
 * attempt went to so that the hedge avoids it.
 *
 * @throws ConfigError from the constructor for an option out of range, naming it.
 * @example
 * const hedging = new Hedging({ percentile: 0.95 });
 * new ServiceClient({ service: 'users', discovery, filters: [retry(), hedging.filter], attemptFilters: [hedging.attemptFilter] });
 */
export class Hedging {
  readonly percentile: number;
  readonly minSamples: number;
  readonly filter: Filter<Call, Reply>;
  readonly attemptFilter: Filter<Attempt, Reply>;
  readonly #hedged = new Emitter<HedgeEvent>();
  /** A second attempt is sent. */
  readonly onHedge: Event<HedgeEvent> = this.#hedged.event;
  readonly #fixedDelayMs: number | undefined;
  readonly #clock: Clock;
  readonly #budget: RetryBudget;
  readonly #idempotent: (call: Call) => boolean;
  readonly #latencies: LatencyWindow;
  readonly #queue: DeadlineQueue<Race>;
  readonly #recomputeEveryMs: number;
  readonly #owner: RaceOwner;
  #delayMs: number | undefined;
  #recomputeAt = Number.NEGATIVE_INFINITY;

  constructor(options: HedgingOptions = {}) {
    const percentile = options.percentile ?? 0.95;
    const minSamples = options.minSamples ?? 20;
    const windowMs = options.windowMs ?? 10_000;
    if (options.delayMs !== undefined && !(Number.isFinite(options.delayMs) && options.delayMs > 0)) {
      throw new ConfigError('delayMs', `must be a positive number of milliseconds, got ${options.delayMs}`);
    }
    if (!(percentile > 0 && percentile < 1))
      throw new ConfigError('percentile', `must be between 0 and 1, got ${percentile}`);
    if (!(Number.isInteger(minSamples) && minSamples >= 1)) {
      throw new ConfigError('minSamples', `must be an integer >= 1, got ${minSamples}`);
    }
    if (!(Number.isFinite(windowMs) && windowMs > 0)) {
      throw new ConfigError('windowMs', `must be a positive number of milliseconds, got ${windowMs}`);
    }
    this.percentile = percentile;
    this.minSamples = minSamples;
    this.#fixedDelayMs = options.delayMs;
    this.#clock = options.clock ?? systemClock;
    this.#budget =
      options.budget ?? new RetryBudget({ percentCanRetry: 0.05, minRetriesPerSecond: 1, clock: this.#clock });
    this.#idempotent = options.idempotent ?? isIdempotent;
    this.#latencies = new LatencyWindow(this.#clock, windowMs);
    this.#queue = new DeadlineQueue<Race>(this.#clock);
    this.#recomputeEveryMs = windowMs / 20;
    this.#owner = {
      record: (ms) => {
        if (this.#fixedDelayMs === undefined) this.#latencies.record(ms);
      },
      tryHedge: (call, first) => {
        if (!this.#budget.tryWithdraw()) return false;
        if (this.#hedged.hasListeners) this.#hedged.emit({ service: call.service, firstInstance: first });
        return true;
      },
      settled: (race) => this.#queue.remove(race),
    };
    this.filter = (call, next) => this.#send(call, next);
    this.attemptFilter = (attempt, next) => {
      const source = LazySignalCall.sourceOf(attempt);
      if (source instanceof Leg) source.instance = attempt.instance.id;
      return next(attempt);
    };
  }

  /** The delay after which a call is hedged now; undefined while too few latencies are known. */
  get delayMs(): number | undefined {
    if (this.#fixedDelayMs !== undefined) return this.#fixedDelayMs;
    const now = this.#clock.now();
    if (now >= this.#recomputeAt) {
      // A percentile of the window moves slowly: reading it 20 times per window is enough.
      this.#recomputeAt = now + this.#recomputeEveryMs;
      this.#delayMs = this.#latencies.count >= this.minSamples ? this.#latencies.quantile(this.percentile) : undefined;
    }
    return this.#delayMs;
  }

  #send(call: Call, next: Service<Call, Reply>): Promise<Reply> {
    this.#budget.deposit();
    const started = this.#clock.now();
    const delay = this.#idempotent(call) ? this.delayMs : undefined;
    if (delay === undefined) {
      return next(call).then((reply) => {
        this.#owner.record(this.#clock.now() - started);
        return reply;
      });
    }
    return new Promise<Reply>((resolve, reject) => {
      const race = new Race(this.#owner, this.#clock, call, next, started + delay, resolve, reject);
      this.#queue.add(race);
      race.start();
    });
  }
}

/** What a race needs of its Hedging, kept off Hedging's public surface. */
interface RaceOwner {
  record(ms: number): void;
  tryHedge(call: Call, first: string | undefined): boolean;
  settled(race: Race): void;
}

/** One of the (at most two) attempts of a hedged call: the source of its lazily made signal. */
class Leg implements SignalSource {
  /** The instance this leg went to, once the attempt filter saw it. */
  instance: string | undefined;
  readonly #signal: ChildSignal;

  constructor(parent: Call) {
    this.#signal = new ChildSignal(() => parent.signal);
  }

  signal(): AbortSignal {
    return this.#signal.get();
  }

  /** The race is over: cancel this leg if it still runs (with a reason), and stop following the parent. */
  finish(cancelReason: unknown): void {
    if (cancelReason === undefined) this.#signal.detach();
    else this.#signal.cancel(cancelReason);
  }
}

/** A hedged call: its legs, and the deadline after which the second leg starts. */
class Race implements DeadlineEntry {
  readonly deadline: number;
  prev: DeadlineEntry | undefined;
  next: DeadlineEntry | undefined;
  readonly #owner: RaceOwner;
  readonly #clock: Clock;
  readonly #call: Call;
  readonly #send: Service<Call, Reply>;
  readonly #resolve: (reply: Reply) => void;
  readonly #reject: (error: unknown) => void;
  readonly #started: number;
  readonly #legs: Leg[] = [];
  #running = 0;
  #done = false;

  constructor(
    owner: RaceOwner,
    clock: Clock,
    call: Call,
    send: Service<Call, Reply>,
    deadline: number,
    resolve: (reply: Reply) => void,
    reject: (error: unknown) => void,
  ) {
    this.#owner = owner;
    this.#clock = clock;
    this.#call = call;
    this.#send = send;
    this.deadline = deadline;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#started = clock.now();
  }

  start(): void {
    this.#run(this.#call.avoid);
  }

  /** The hedging delay passed with no answer: send the second leg, if the budget allows. */
  expire(): void {
    const first = this.#legs[0]?.instance;
    if (this.#done || this.#call.signal?.aborted === true || !this.#owner.tryHedge(this.#call, first)) return;
    this.#run(first === undefined ? this.#call.avoid : new Set(this.#call.avoid).add(first));
  }

  #run(avoid: ReadonlySet<string> | undefined): void {
    const leg = new Leg(this.#call);
    this.#legs.push(leg);
    this.#running++;
    let sent: Promise<Reply>;
    try {
      sent = this.#send(new LazySignalCall(this.#call, leg, { avoid }) as unknown as Call);
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(
      (reply) => this.#won(leg, reply),
      (error: unknown) => this.#lost(error),
    );
  }

  #won(winner: Leg, reply: Reply): void {
    if (this.#done) return;
    this.#end();
    this.#owner.record(this.#clock.now() - this.#started);
    for (const leg of this.#legs)
      leg.finish(leg === winner ? undefined : new Error('another hedged attempt answered first'));
    this.#resolve(reply);
  }

  #lost(error: unknown): void {
    this.#running--;
    // Wait for a leg still running. Once none is, fail: a failure is for retry() to handle, not
    // for a hedge (which waits for slowness, not errors).
    if (this.#done || this.#running > 0) return;
    this.#end();
    for (const leg of this.#legs) leg.finish(undefined);
    this.#reject(error);
  }

  #end(): void {
    this.#done = true;
    this.#owner.settled(this);
  }
}
