import { EventEmitter } from 'node:events';
import OpossumBreaker from 'opossum';
import {
  ConfigError,
  Emitter,
  systemClock,
  type CircuitState,
  type CircuitStateChanged,
  type Clock,
  type Disposable,
  type Event,
} from '@trellis/core';
import { neverAborted, type Policy } from '../shared/policy.js';
import { CircuitOpenError } from './circuit-open-error.js';
import { SlidingWindow } from './sliding-window.js';

/** The policy numbers of a breaker, shared by every breaker of a {@link CircuitBreakerRegistry}. */
export interface CircuitBreakerConfig {
  /**
   * Share of failed calls in the window at or above which the breaker opens, in (0, 1];
   * default 0.5. opossum's `errorThresholdPercentage`, as a fraction.
   */
  readonly failureRateThreshold?: number;
  /** Calls the window must hold before the failure rate can open the breaker; default 20. opossum's `volumeThreshold`. */
  readonly minimumCalls?: number;
  /** Length of the rolling window of counted calls; default 10 000 ms. opossum's `rollingCountTimeout`. */
  readonly windowMs?: number;
  /** Slices the window is cut into, so that calls leave it a slice at a time; default 10. */
  readonly windowBuckets?: number;
  /** How long an open breaker refuses calls before letting one probe through; default 10 000 ms. */
  readonly resetTimeoutMs?: number;
  /** A successful call that took this long or longer counts as a failure; default none (no timing at all). */
  readonly slowCallMs?: number;
  /** Never open during the first `windowMs` after creation (opossum's `allowWarmUp`); default false. */
  readonly allowWarmUp?: boolean;
  /** Where time comes from for the window and durations; default {@link systemClock}. */
  readonly clock?: Clock;
}

/** A breaker's policy and what it guards. */
export interface CircuitBreakerOptions extends CircuitBreakerConfig {
  /** The service the guarded calls go to. */
  readonly service: string;
  /** The instance id, for a per-instance breaker. */
  readonly instance?: string;
}

/** A breaker's counts, for health pages and tests. */
export interface CircuitSnapshot {
  readonly state: CircuitState;
  readonly calls: number;
  readonly failures: number;
  /** Share of the calls in the window that failed, from 0 to 1; 0 when there are none. */
  readonly failureRate: number;
}

// States as small integers: the hot path compares one field.
const CLOSED = 0;
const OPEN = 1;
const HALF_OPEN = 2;
const DISPOSED = 3;
const stateNames: readonly CircuitState[] = ['closed', 'open', 'half-open', 'closed'];

// opossum requires an action; it is never fired; calls report through tryAcquire / onSuccess / onFailure.
const neverFired = (): Promise<void> => Promise.resolve();

/**
 * A circuit breaker: counts the outcomes of calls over a rolling window, opens when the failure
 * rate reaches the threshold (once the window holds enough calls), refuses calls while open,
 * lets one probe call through after the reset timeout, and closes when the probe succeeds.
 *
 * The state machine, the reset timer and the warm-up period are opossum 9's; the counting is
 * this package's own O(1), fixed-memory window, and opossum's `fire()`, timeout and latency
 * percentiles are never used (they cost about 114 µs per call once calls fail, and memory per
 * call). Use the low-level protocol where a call is split into request and response halves:
 * {@link tryAcquire} before, then exactly one of {@link onSuccess}, {@link onFailure} or
 * {@link release}.
 *
 * opossum's reset timer is a real (unref'd) `setTimeout`: the injected clock drives the window
 * and durations, not the open → half-open step.
 *
 * @throws ConfigError (`INVALID_CONFIG`) naming the field, for a bad option.
 * @example
 * const breaker = new CircuitBreaker({ service: 'users', failureRateThreshold: 0.5, slowCallMs: 2_000 });
 * breaker.onStateChanged((c) => log.warn(`${c.service}: ${c.from} -> ${c.to}`));
 * const rows = await breaker.execute((signal) => db.query('select * from users', { signal }));
 */
export class CircuitBreaker implements Disposable, Policy {
  readonly service: string;
  readonly instance: string | undefined;
  readonly #opossum: OpossumBreaker;
  readonly #window: SlidingWindow;
  readonly #clock: Clock;
  readonly #threshold: number;
  readonly #minimumCalls: number;
  readonly #resetTimeoutMs: number;
  readonly #slowCallMs: number;
  readonly #stateChanged = new Emitter<CircuitStateChanged>();
  #state = CLOSED;
  #probing = false;
  #probeStartedAt = 0;
  #openedAt = 0;
  #lastActivity: number;

  /** Every change of state, with the service and instance the breaker guards. */
  readonly onStateChanged: Event<CircuitStateChanged> = this.#stateChanged.event;

  constructor(options: CircuitBreakerOptions) {
    const config = resolveConfig(options);
    this.service = options.service;
    this.instance = options.instance;
    this.#clock = config.clock;
    this.#threshold = config.failureRateThreshold;
    this.#minimumCalls = config.minimumCalls;
    this.#resetTimeoutMs = config.resetTimeoutMs;
    this.#slowCallMs = config.slowCallMs;
    this.#window = new SlidingWindow(config.windowMs, config.windowBuckets);
    this.#lastActivity = this.#clock.now();
    this.#opossum = new OpossumBreaker(neverFired, {
      name: options.instance === undefined ? options.service : `${options.service}/${options.instance}`,
      resetTimeout: config.resetTimeoutMs,
      errorThresholdPercentage: config.failureRateThreshold * 100,
      volumeThreshold: config.minimumCalls,
      rollingCountTimeout: config.windowMs,
      rollingCountBuckets: 1,
      allowWarmUp: config.allowWarmUp,
      // The measured pitfalls: no per-call timer, no latency sorting, no snapshot interval.
      timeout: false,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      // opossum's Status rotates its buckets on a setInterval per breaker unless it is given an
      // emitter to listen to. This one never emits (SlidingWindow does the counting), so a
      // breaker holds a timer only while open. One emitter shared by all breakers would make
      // making and dropping a breaker O(breakers): opossum scans the emitter's listeners.
      rotateBucketController: new EventEmitter(),
    });
    this.#opossum.on('open', () => this.#entered(OPEN));
    this.#opossum.on('halfOpen', () => this.#entered(HALF_OPEN));
    this.#opossum.on('close', () => this.#entered(CLOSED));
  }

  /** The clock the window and durations are read from. */
  get clock(): Clock {
    return this.#clock;
  }

  /** The current state. */
  get state(): CircuitState {
    return stateNames[this.#state] as CircuitState;
  }

  /**
   * True when a call may be tried now: closed, or half-open with no probe out (or with a probe
   * out for `resetTimeoutMs` already, which the next {@link tryAcquire} counts as failed).
   */
  get isCallPermitted(): boolean {
    const state = this.#state;
    if (state === HALF_OPEN) return !this.#probing || this.#probeIsStale();
    return state === CLOSED || state === DISPOSED;
  }

  /** True when outcomes should come with their duration, that is when a slow-call threshold is set. */
  get measuresDuration(): boolean {
    return this.#slowCallMs !== Number.POSITIVE_INFINITY;
  }

  /** The clock's reading at the last reported outcome, or at creation. */
  get lastActivity(): number {
    return this.#lastActivity;
  }

  /** The counts of the current window. */
  snapshot(): CircuitSnapshot {
    if (this.#state === CLOSED) this.#window.roll(this.#clock.now());
    const { calls, failures } = this.#window;
    return { state: this.state, calls, failures, failureRate: calls === 0 ? 0 : failures / calls };
  }

  /**
   * Asks to make a call. True when closed; when half-open, true for the first caller only (the
   * probe) until its outcome is reported; false when open. After true, report the outcome with
   * exactly one of {@link onSuccess}, {@link onFailure} or {@link release}.
   *
   * A probe with no outcome after `resetTimeoutMs` counts as failed at the next ask, and the
   * breaker opens again: a hung probe must not hold its instance out of rotation for ever.
   */
  tryAcquire(): boolean {
    const state = this.#state;
    if (state === CLOSED) return true;
    if (state === HALF_OPEN) {
      if (!this.#probing) {
        this.#probing = true;
        this.#probeStartedAt = this.#clock.now();
        return true;
      }
      if (this.#probeIsStale()) this.#opossum.open();
      return false;
    }
    return state === DISPOSED;
  }

  /**
   * Reports a call that succeeded after `durationMs`; a success at or over `slowCallMs` counts
   * as a failure. In half-open state a success closes the breaker. `endedAt`, the clock's
   * reading when the call ended, saves a clock read to a caller that has it.
   */
  onSuccess(durationMs = 0, endedAt?: number): void {
    this.#record(durationMs >= this.#slowCallMs, endedAt);
  }

  /** Reports a failed call (`endedAt` as for {@link onSuccess}). In half-open state a failure opens the breaker again. */
  onFailure(_durationMs = 0, endedAt?: number): void {
    this.#record(true, endedAt);
  }

  /**
   * Gives back a permission whose call says nothing about the target (the caller cancelled it,
   * a local limit refused it): nothing is counted, and in half-open state another probe may go.
   */
  release(): void {
    if (this.#state === HALF_OPEN) this.#probing = false;
  }

  /** The error to throw for a refused call: how long until a probe may go, and what was refused. */
  rejection(): CircuitOpenError {
    const retryAfterMs =
      this.#state === OPEN ? Math.max(0, this.#openedAt + this.#resetTimeoutMs - this.#clock.now()) : 0;
    return new CircuitOpenError(this.service, this.instance, retryAfterMs);
  }

  /**
   * Runs `fn` under the breaker: refused when open, counted when it settles (a rejection is a
   * failure, a slow success too).
   * @throws CircuitOpenError when the breaker refuses the call, or what `fn` throws.
   */
  async execute<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (!this.tryAcquire()) throw this.rejection();
    const timed = this.measuresDuration;
    const started = timed ? this.#clock.now() : 0;
    let value: T;
    try {
      value = await fn(signal ?? neverAborted);
    } catch (error) {
      // A call the caller cancelled says nothing of the target's health.
      if (signal?.aborted === true) {
        this.release();
        throw error;
      }
      const ended = timed ? this.#clock.now() : undefined;
      this.onFailure(ended === undefined ? 0 : ended - started, ended);
      throw error;
    }
    const ended = timed ? this.#clock.now() : undefined;
    this.onSuccess(ended === undefined ? 0 : ended - started, ended);
    return value;
  }

  /** Stops the reset timer and drops listeners. Afterwards every call is let through and nothing is counted. */
  dispose(): void {
    if (this.#state === DISPOSED) return;
    this.#state = DISPOSED;
    this.#opossum.shutdown();
    this.#stateChanged.clear();
  }

  #record(failed: boolean, endedAt: number | undefined): void {
    const state = this.#state;
    if (state === CLOSED) {
      const now = endedAt ?? this.#clock.now();
      this.#lastActivity = now;
      this.#window.add(now, failed);
      if (failed && this.#shouldOpen()) this.#opossum.open();
    } else if (state === HALF_OPEN) {
      // Any outcome seen while half-open decides: the probe's, or one of a call let through
      // before the breaker opened, which is as fresh a sign of the target's health.
      this.#lastActivity = this.#clock.now();
      this.#probing = false;
      if (failed) this.#opossum.open();
      else this.#opossum.close();
    }
    // Open or disposed: outcomes of calls let through earlier are not counted.
  }

  #probeIsStale(): boolean {
    return this.#clock.now() - this.#probeStartedAt >= this.#resetTimeoutMs;
  }

  #shouldOpen(): boolean {
    const window = this.#window;
    return (
      window.calls >= this.#minimumCalls && window.failures >= this.#threshold * window.calls && !this.#opossum.warmUp
    );
  }

  // Called by opossum's events, synchronously inside open() / close() or from its reset timer.
  #entered(state: number): void {
    const from = this.#state;
    if (from === DISPOSED || from === state) return;
    this.#state = state;
    this.#probing = false;
    const { calls, failures } = this.#window;
    if (state === OPEN) this.#openedAt = this.#clock.now();
    // A closed breaker starts afresh, as in Resilience4j and Hystrix: failures from before it
    // opened must not reopen it on the first new failure (opossum's own window keeps them).
    if (state === CLOSED) this.#window.reset();
    if (!this.#stateChanged.hasListeners) return;
    this.#stateChanged.emit({
      type: 'circuit-state-changed',
      service: this.service,
      instance: this.instance,
      from: stateNames[from] as CircuitState,
      to: stateNames[state] as CircuitState,
      calls,
      failureRate: calls === 0 ? 0 : failures / calls,
    });
  }
}

interface ResolvedConfig {
  readonly failureRateThreshold: number;
  readonly minimumCalls: number;
  readonly windowMs: number;
  readonly windowBuckets: number;
  readonly resetTimeoutMs: number;
  /** Infinity when slow calls are not counted, so that the hot path compares without a branch on undefined. */
  readonly slowCallMs: number;
  readonly allowWarmUp: boolean;
  readonly clock: Clock;
}

/**
 * Applies defaults and checks every field.
 * @throws ConfigError naming the field.
 */
export function resolveConfig(config: CircuitBreakerConfig, prefix = 'breaker'): ResolvedConfig {
  const resolved: ResolvedConfig = {
    failureRateThreshold: config.failureRateThreshold ?? 0.5,
    minimumCalls: config.minimumCalls ?? 20,
    windowMs: config.windowMs ?? 10_000,
    windowBuckets: config.windowBuckets ?? 10,
    resetTimeoutMs: config.resetTimeoutMs ?? 10_000,
    slowCallMs: config.slowCallMs ?? Number.POSITIVE_INFINITY,
    allowWarmUp: config.allowWarmUp ?? false,
    clock: config.clock ?? systemClock,
  };
  type NumberField = Exclude<keyof ResolvedConfig, 'allowWarmUp' | 'clock'>;
  const check = (field: NumberField, ok: boolean, problem: string): void => {
    if (!ok) throw new ConfigError(`${prefix}.${field}`, `${problem}, got ${resolved[field]}`);
  };
  const { failureRateThreshold: rate, minimumCalls, windowMs, windowBuckets, resetTimeoutMs, slowCallMs } = resolved;
  check('failureRateThreshold', rate > 0 && rate <= 1, 'must be a share above 0 and at most 1');
  check('minimumCalls', Number.isInteger(minimumCalls) && minimumCalls >= 1, 'must be a whole number >= 1');
  check('windowMs', Number.isFinite(windowMs) && windowMs > 0, 'must be a positive number of milliseconds');
  check(
    'windowBuckets',
    Number.isInteger(windowBuckets) && windowBuckets >= 1 && windowBuckets <= 1_000,
    'must be a whole number from 1 to 1000',
  );
  // Node's setTimeout fires at once beyond 2^31 - 1 ms; opossum's reset timer is one.
  check(
    'resetTimeoutMs',
    Number.isFinite(resetTimeoutMs) && resetTimeoutMs > 0 && resetTimeoutMs <= 2 ** 31 - 1,
    'must be a positive number of milliseconds below 2^31',
  );
  check('slowCallMs', slowCallMs > 0, 'must be a positive number of milliseconds');
  return resolved;
}
