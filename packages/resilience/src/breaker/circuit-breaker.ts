import { EventEmitter } from 'node:events';
import OpossumBreaker from 'opossum';
import {
  ClosedError,
  ConfigError,
  Emitter,
  systemClock,
  toDisposable,
  type CircuitState,
  type CircuitStateChanged,
  type Clock,
  type Closeable,
  type Disposable,
  type Event,
  type Timer,
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
  /**
   * How long an open breaker refuses calls before letting probes through, the first time it
   * opens; default 10 000 ms. Also how long the probes of a half-open breaker may stay out
   * unanswered before they count as failed.
   */
  readonly resetTimeoutMs?: number;
  /**
   * The longest open duration: each time the probes fail and the breaker opens again, it stays
   * open twice as long as the time before, up to this (the retry policy's `backoffMaxMs`, with
   * `resetTimeoutMs` as the base); back to `resetTimeoutMs` once it closes. Default
   * `resetTimeoutMs`: every open lasts the same.
   */
  readonly backoffMaxMs?: number;
  /**
   * Calls let through while half-open (Resilience4j's `permittedNumberOfCallsInHalfOpenState`);
   * default 1. Calls beyond them are refused at once.
   */
  readonly probes?: number;
  /**
   * Probes that must succeed to close the breaker, from 1 to `probes`; default `probes` (all).
   * It opens again as soon as so many have failed that the rest cannot reach it.
   */
  readonly probeSuccessThreshold?: number;
  /** A successful call that took this long or longer counts as a failure; default none (no timing at all). */
  readonly slowCallMs?: number;
  /** Never open during the first `windowMs` after creation (opossum's `allowWarmUp`), on the clock; default false. */
  readonly allowWarmUp?: boolean;
  /** Where time comes from: the window, durations, and the step from open to half-open; default {@link systemClock}. */
  readonly clock?: Clock;
}

/** A breaker's policy and what it guards. */
export interface CircuitBreakerOptions extends CircuitBreakerConfig {
  /** The service the guarded calls go to. */
  readonly service: string;
  /** The instance id, for a per-instance breaker. */
  readonly instance?: string;
  /** A state saved by {@link CircuitBreaker.toJSON} to start from (another process's, or before a restart). */
  readonly state?: SavedCircuitState;
}

/** A breaker's counts, for health pages and tests. */
export interface CircuitSnapshot {
  readonly state: CircuitState;
  readonly calls: number;
  readonly failures: number;
  /** Share of the calls in the window that failed, from 0 to 1; 0 when there are none. */
  readonly failureRate: number;
}

/**
 * A breaker's state as plain JSON, from {@link CircuitBreaker.toJSON}, to make a breaker from
 * again (the `state` option). Times are durations left, since clock readings mean nothing in
 * another process: they count again from the moment the state is restored.
 */
export interface SavedCircuitState {
  /** The state; a breaker saved `isolated` comes back `open` (isolations belong to the code that holds them). */
  readonly state: CircuitState;
  /** Time the breaker had left to stay open; 0 unless open. */
  readonly openRemainingMs: number;
  /** The open duration it had reached (grown by `backoffMaxMs` after failed probes). */
  readonly openDurationMs: number;
  /** Calls and failures in its window (closed only). */
  readonly calls: number;
  readonly failures: number;
  /** Time left of the warm-up period; 0 when none. */
  readonly warmUpRemainingMs: number;
}

// States as small integers: the hot path compares one field.
const CLOSED = 0;
const OPEN = 1;
const HALF_OPEN = 2;
const ISOLATED = 3;
const SHUT_DOWN = 4;
const stateNames: readonly CircuitState[] = ['closed', 'open', 'half-open', 'isolated', 'closed'];

// opossum requires an action; it is never fired; calls report through tryAcquire / onSuccess / onFailure.
const neverFired = (): Promise<void> => Promise.resolve();
// opossum's reset timer is a real setTimeout of `resetTimeout`: given the longest a timer can
// wait (about 24.8 days), it never fires before the injected clock has moved the breaker on.
const unreachedMs = 2 ** 31 - 1;
// The `state` option opossum restores from; @types/opossum 8 does not declare it.
type OpossumOptions = OpossumBreaker.Options & {
  state?: { closed: boolean; halfOpen: boolean; enabled: boolean; warmUp: boolean; shutdown: boolean };
};

/**
 * A circuit breaker: counts the outcomes of calls over a rolling window, opens when the failure
 * rate reaches the threshold (once the window holds enough calls), refuses calls while open,
 * lets `probes` calls through when the open duration has passed (half-open), and closes when
 * `probeSuccessThreshold` of them succeed, or opens again for a longer time (up to
 * `backoffMaxMs`) when they fail. `isolate()` holds it open by hand; `toJSON()` and the `state`
 * option save and restore it.
 *
 * How time reaches it: every reading comes from the injected `clock`. Opening schedules one
 * timer on that clock for the open duration; when it fires the breaker goes half-open (and
 * reports it) without waiting for traffic, and a call that comes after the due time and before
 * the timer fires moves it there itself. opossum 9 keeps the state machine (open, half-open,
 * closed), its snapshot (`toJSON().state`) and restore (its `state` option): since it has no
 * public way to go half-open, the breaker restores a new opossum machine in half-open state at
 * that moment (about 13 µs, once per open period). opossum's own reset timer is set beyond reach
 * (24.8 days, unref'd), and if it ever fires first its machine is put back to open.
 *
 * The counting is this package's own O(1), fixed-memory window, and opossum's `fire()`,
 * timeout and latency percentiles are never used (they cost about 114 µs per call once calls
 * fail, and memory per call). Use the low-level protocol where a call is split into request
 * and response halves: {@link tryAcquire} before, then exactly one of {@link onSuccess},
 * {@link onFailure} or {@link release}.
 *
 * @throws ConfigError (`INVALID_CONFIG`) naming the field, for a bad option or saved state.
 * @example
 * const breaker = new CircuitBreaker({ service: 'users', failureRateThreshold: 0.5, slowCallMs: 2_000 });
 * breaker.onStateChanged((c) => log.warn(`${c.service}: ${c.from} -> ${c.to}`));
 * const rows = await breaker.execute((signal) => db.query('select * from users', { signal }));
 */
export class CircuitBreaker implements Closeable, Policy {
  readonly service: string;
  readonly instance: string | undefined;
  #opossum: OpossumBreaker;
  #opossumOptions: OpossumBreaker.Options;
  #window: SlidingWindow;
  #windowMs: number;
  #windowBuckets: number;
  readonly #clock: Clock;
  #threshold: number;
  #minimumCalls: number;
  #resetTimeoutMs: number;
  #backoffMaxMs: number;
  #probes: number;
  #probeSuccessThreshold: number;
  #slowCallMs: number;
  readonly #stateChanged = new Emitter<CircuitStateChanged>();
  #state = CLOSED;
  #openUntil = 0;
  #openDurationMs: number;
  #timer: Timer | undefined;
  #isolations = 0;
  #probesLeft = 0;
  #probeSuccesses = 0;
  #probeFailures = 0;
  #lastProbeAt = 0;
  #warmUpUntil: number;
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
    this.#backoffMaxMs = config.backoffMaxMs;
    this.#probes = config.probes;
    this.#probeSuccessThreshold = config.probeSuccessThreshold;
    this.#slowCallMs = config.slowCallMs;
    this.#openDurationMs = config.resetTimeoutMs;
    this.#window = new SlidingWindow(config.windowMs, config.windowBuckets);
    this.#windowMs = config.windowMs;
    this.#windowBuckets = config.windowBuckets;
    const now = this.#clock.now();
    this.#lastActivity = now;
    this.#warmUpUntil = config.allowWarmUp ? now + config.windowMs : Number.NEGATIVE_INFINITY;
    this.#opossumOptions = {
      name: options.instance === undefined ? options.service : `${options.service}/${options.instance}`,
      resetTimeout: unreachedMs,
      errorThresholdPercentage: config.failureRateThreshold * 100,
      volumeThreshold: config.minimumCalls,
      rollingCountTimeout: config.windowMs,
      rollingCountBuckets: 1,
      // The measured pitfalls: no per-call timer, no latency sorting, no snapshot interval.
      // Warm-up is counted on the injected clock here, not on opossum's setTimeout.
      timeout: false,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
    };
    const saved = options.state;
    if (saved === undefined) {
      this.#opossum = this.#machine(undefined);
      return;
    }
    checkSaved(saved);
    this.#warmUpUntil = saved.warmUpRemainingMs > 0 ? now + saved.warmUpRemainingMs : Number.NEGATIVE_INFINITY;
    this.#openDurationMs = Math.min(this.#backoffMaxMs, Math.max(this.#resetTimeoutMs, saved.openDurationMs));
    if (saved.state === 'closed') {
      this.#opossum = this.#machine(undefined);
      this.#window.restore(now, saved.calls, saved.failures);
    } else if (saved.state === 'half-open') {
      this.#opossum = this.#machine('half-open');
      this.#startProbing();
      this.#state = HALF_OPEN;
    } else {
      // Open for the time it had left; isolated for one whole open duration, then probed.
      this.#opossum = this.#machine('open');
      this.#state = OPEN;
      this.#stayOpen(
        saved.state === 'open' ? Math.min(saved.openRemainingMs, this.#openDurationMs) : this.#openDurationMs,
      );
    }
  }

  /** The clock the window, durations and the open duration are read from. */
  get clock(): Clock {
    return this.#clock;
  }

  /** The current state. */
  get state(): CircuitState {
    return stateNames[this.#state] as CircuitState;
  }

  /**
   * True when a call may be tried now: closed; open past its open duration (the next
   * {@link tryAcquire} makes it half-open); half-open with a probe left (or with its probes out
   * for `resetTimeoutMs` already, which the next {@link tryAcquire} counts as failed).
   */
  get isCallPermitted(): boolean {
    const state = this.#state;
    if (state === CLOSED || state === SHUT_DOWN) return true;
    if (state === OPEN) return this.#clock.now() >= this.#openUntil;
    if (state === HALF_OPEN) return this.#probesLeft > 0 || this.#probesAreStale();
    return false;
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
   * The state to save, as plain JSON (cockatiel's `toJSON()`); `new CircuitBreaker({ ...,
   * state })` takes it back. The machine's part comes from opossum's own snapshot.
   */
  toJSON(): SavedCircuitState {
    const now = this.#clock.now();
    const machine = this.#opossum.toJSON().state;
    const state: CircuitState =
      this.#state === ISOLATED ? 'isolated' : machine.halfOpen ? 'half-open' : machine.open ? 'open' : 'closed';
    if (state === 'closed') this.#window.roll(now);
    return {
      state,
      openRemainingMs: state === 'open' ? Math.max(0, this.#openUntil - now) : 0,
      openDurationMs: this.#openDurationMs,
      calls: state === 'closed' ? this.#window.calls : 0,
      failures: state === 'closed' ? this.#window.failures : 0,
      warmUpRemainingMs: Math.max(0, this.#warmUpUntil - now),
    };
  }

  /**
   * Asks to make a call. True when closed; when half-open, true for the first `probes` callers
   * until enough of their outcomes decide; false when open or isolated. After true, report the
   * outcome with exactly one of {@link onSuccess}, {@link onFailure} or {@link release}.
   *
   * Probes with no decision `resetTimeoutMs` after the last one went out count as failed at the
   * next ask, and the breaker opens again: a hung probe must not hold its instance out of
   * rotation for ever.
   */
  tryAcquire(): boolean {
    const state = this.#state;
    if (state === CLOSED) return true;
    if (state === OPEN) {
      // The clock's timer makes it half-open at the due time; a call may come first.
      if (this.#clock.now() < this.#openUntil) return false;
      this.#toHalfOpen();
    } else if (state !== HALF_OPEN) {
      return state === SHUT_DOWN;
    }
    if (this.#probesLeft > 0) {
      this.#probesLeft--;
      this.#lastProbeAt = this.#clock.now();
      return true;
    }
    if (this.#probesAreStale()) this.#open(true);
    return false;
  }

  /**
   * Reports a call that succeeded after `durationMs`; a success at or over `slowCallMs` counts
   * as a failure. In half-open state it counts toward `probeSuccessThreshold`. `endedAt`, the
   * clock's reading when the call ended, saves a clock read to a caller that has it.
   */
  onSuccess(durationMs = 0, endedAt?: number): void {
    this.#record(durationMs >= this.#slowCallMs, endedAt);
  }

  /** Reports a failed call (`endedAt` as for {@link onSuccess}). In half-open state enough failures open the breaker again. */
  onFailure(_durationMs = 0, endedAt?: number): void {
    this.#record(true, endedAt);
  }

  /**
   * Gives back a permission whose call says nothing about the target (the caller cancelled it,
   * a local limit refused it): nothing is counted, and in half-open state another probe may go.
   */
  release(): void {
    if (this.#state === HALF_OPEN && this.#probesLeft < this.#probes) this.#probesLeft++;
  }

  /** The error to throw for a refused call: why, how long until a probe may go, and what was refused. */
  rejection(): CircuitOpenError {
    const state = this.#state;
    const base = { service: this.service, instance: this.instance };
    if (state === ISOLATED) return new CircuitOpenError({ ...base, reason: 'isolated', retryAfterMs: Infinity });
    if (state === HALF_OPEN) return new CircuitOpenError({ ...base, reason: 'half-open', retryAfterMs: 0 });
    const retryAfterMs = state === OPEN ? Math.max(0, this.#openUntil - this.#clock.now()) : 0;
    return new CircuitOpenError({ ...base, reason: 'open', retryAfterMs });
  }

  /**
   * Holds the breaker open by hand (cockatiel's `isolate()`, Resilience4j's forced open): every
   * call fails at once with a {@link CircuitOpenError} whose `reason` is `isolated`, and a
   * per-instance breaker's instance is ejected, until every isolation made is disposed. Then
   * the breaker closes, with an empty window.
   * @throws ClosedError after {@link close}.
   * @example
   * const maintenance = breakers.get('users', 'users-3').isolate();
   * // ... later
   * maintenance.dispose();
   */
  isolate(): Disposable {
    if (this.#state === SHUT_DOWN) throw new ClosedError('circuit breaker');
    this.#isolations++;
    if (this.#isolations === 1) {
      const from = this.#state;
      this.#cancelTimer();
      this.#opossum.open();
      this.#state = ISOLATED;
      this.#changed(from);
    }
    return toDisposable(() => {
      this.#isolations--;
      if (this.#isolations === 0 && this.#state === ISOLATED) this.#close();
    });
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

  /**
   * Takes new policy numbers now, keeping the state: a closed breaker keeps the calls counted
   * in its window (moved into a new one when `windowMs` or `windowBuckets` change) and judges
   * the next outcome by the new threshold; an open one stays open for the time it was given and
   * probes by the new numbers; a half-open one counts its probes out against them. `allowWarmUp`
   * and the clock stay as constructed.
   * @throws ConfigError naming the field; nothing changes then.
   * @example
   * const breaker = new CircuitBreaker({ service: 'users' });
   * breaker.reconfigure({ failureRateThreshold: 0.25, minimumCalls: 50 });
   */
  reconfigure(config: Omit<CircuitBreakerConfig, 'clock' | 'allowWarmUp'>): void {
    const resolved = resolveConfig({ ...config, clock: this.#clock });
    this.#threshold = resolved.failureRateThreshold;
    this.#minimumCalls = resolved.minimumCalls;
    this.#resetTimeoutMs = resolved.resetTimeoutMs;
    this.#backoffMaxMs = resolved.backoffMaxMs;
    this.#probes = resolved.probes;
    this.#probeSuccessThreshold = resolved.probeSuccessThreshold;
    this.#slowCallMs = resolved.slowCallMs;
    this.#openDurationMs = Math.min(resolved.backoffMaxMs, Math.max(resolved.resetTimeoutMs, this.#openDurationMs));
    if (this.#state === CLOSED) this.#openDurationMs = resolved.resetTimeoutMs;
    if (this.#state === HALF_OPEN) this.#probesLeft = Math.min(this.#probesLeft, resolved.probes);
    if (resolved.windowMs !== this.#windowMs || resolved.windowBuckets !== this.#windowBuckets) {
      const now = this.#clock.now();
      const old = this.#window;
      old.roll(now);
      this.#window = new SlidingWindow(resolved.windowMs, resolved.windowBuckets);
      this.#window.restore(now, old.calls, old.failures);
      this.#windowMs = resolved.windowMs;
      this.#windowBuckets = resolved.windowBuckets;
    }
    this.#opossumOptions = {
      ...this.#opossumOptions,
      errorThresholdPercentage: resolved.failureRateThreshold * 100,
      volumeThreshold: resolved.minimumCalls,
      rollingCountTimeout: resolved.windowMs,
    };
  }

  /**
   * Releases the breaker: stops its timer and drops its listeners; afterwards every call is let
   * through and nothing is counted. (It does not close the circuit: that only probes do.) Done
   * when it returns; the promise is for {@link Closeable}. Safe to call twice.
   */
  close(): Promise<void> {
    if (this.#state !== SHUT_DOWN) {
      this.#state = SHUT_DOWN;
      this.#cancelTimer();
      this.#opossum.shutdown();
      this.#stateChanged.clear();
    }
    return Promise.resolve();
  }

  #record(failed: boolean, endedAt: number | undefined): void {
    const state = this.#state;
    if (state === CLOSED) {
      const now = endedAt ?? this.#clock.now();
      this.#lastActivity = now;
      this.#window.add(now, failed);
      if (failed && this.#shouldOpen(now)) this.#open(false);
    } else if (state === HALF_OPEN) {
      // Every outcome seen while half-open counts: a probe's, or one of a call let through
      // before the breaker opened, which is as fresh a sign of the target's health.
      this.#lastActivity = this.#clock.now();
      if (failed) {
        if (++this.#probeFailures > this.#probes - this.#probeSuccessThreshold) this.#open(true);
      } else if (++this.#probeSuccesses >= this.#probeSuccessThreshold) {
        this.#close();
      }
    }
    // Open, isolated or shut down: outcomes of calls let through earlier are not counted.
  }

  #probesAreStale(): boolean {
    return this.#probesLeft === 0 && this.#clock.now() - this.#lastProbeAt >= this.#resetTimeoutMs;
  }

  #shouldOpen(now: number): boolean {
    const window = this.#window;
    return (
      window.calls >= this.#minimumCalls &&
      window.failures >= this.#threshold * window.calls &&
      now >= this.#warmUpUntil
    );
  }

  // Closed or half-open → open. After failed probes the open duration doubles, up to backoffMaxMs.
  #open(afterProbes: boolean): void {
    const from = this.#state;
    if (afterProbes) this.#openDurationMs = Math.min(this.#backoffMaxMs, this.#openDurationMs * 2);
    this.#opossum.open();
    this.#state = OPEN;
    this.#stayOpen(this.#openDurationMs);
    this.#changed(from);
  }

  #stayOpen(durationMs: number): void {
    this.#cancelTimer();
    this.#openUntil = this.#clock.now() + durationMs;
    this.#timer = this.#clock.setTimer(durationMs, this.#openElapsed);
  }

  // The clock's timer for the open duration: half-open without waiting for a call.
  readonly #openElapsed = (): void => {
    this.#timer = undefined;
    if (this.#state === OPEN) this.#toHalfOpen();
  };

  #toHalfOpen(): void {
    this.#cancelTimer();
    // opossum 9 goes half-open only from its own setTimeout; its `state` option restores a machine there.
    const old = this.#opossum;
    this.#opossum = this.#machine('half-open');
    old.shutdown();
    this.#startProbing();
    this.#state = HALF_OPEN;
    this.#changed(OPEN);
  }

  #startProbing(): void {
    this.#probesLeft = this.#probes;
    this.#probeSuccesses = 0;
    this.#probeFailures = 0;
  }

  // Half-open or isolated → closed: a fresh window, as in Resilience4j and Hystrix (failures from
  // before it opened must not reopen it on the first new failure; opossum's own window keeps
  // them), and the open duration back to its base.
  #close(): void {
    const from = this.#state;
    this.#cancelTimer();
    this.#opossum.close();
    this.#state = CLOSED;
    this.#openDurationMs = this.#resetTimeoutMs;
    this.#changed(from);
    this.#window.reset();
  }

  #cancelTimer(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #machine(state: 'open' | 'half-open' | undefined): OpossumBreaker {
    const options: OpossumOptions = {
      ...this.#opossumOptions,
      // opossum's Status rotates its buckets on a setInterval per breaker unless it is given an
      // emitter to listen to. This one never emits (SlidingWindow does the counting). One
      // emitter shared by all breakers would make making and dropping a breaker O(breakers):
      // opossum scans the emitter's listeners.
      rotateBucketController: new EventEmitter(),
      ...(state === undefined
        ? {}
        : { state: { closed: false, halfOpen: state === 'half-open', enabled: true, warmUp: false, shutdown: false } }),
    };
    const machine = new OpossumBreaker(neverFired, options);
    // Its unreachable reset timer fired after all (open for 24.8 days): open is where it stays.
    machine.on('halfOpen', () => machine.open());
    return machine;
  }

  #changed(from: number): void {
    if (!this.#stateChanged.hasListeners) return;
    const { calls, failures } = this.#window;
    this.#stateChanged.emit({
      type: 'circuit-state-changed',
      service: this.service,
      instance: this.instance,
      from: stateNames[from] as CircuitState,
      to: stateNames[this.#state] as CircuitState,
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
  readonly backoffMaxMs: number;
  readonly probes: number;
  readonly probeSuccessThreshold: number;
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
  const resetTimeoutMs = config.resetTimeoutMs ?? 10_000;
  const probes = config.probes ?? 1;
  const resolved: ResolvedConfig = {
    failureRateThreshold: config.failureRateThreshold ?? 0.5,
    minimumCalls: config.minimumCalls ?? 20,
    windowMs: config.windowMs ?? 10_000,
    windowBuckets: config.windowBuckets ?? 10,
    resetTimeoutMs,
    backoffMaxMs: config.backoffMaxMs ?? resetTimeoutMs,
    probes,
    probeSuccessThreshold: config.probeSuccessThreshold ?? probes,
    slowCallMs: config.slowCallMs ?? Number.POSITIVE_INFINITY,
    allowWarmUp: config.allowWarmUp ?? false,
    clock: config.clock ?? systemClock,
  };
  checkCircuitBreakerConfig(resolved, prefix);
  return resolved;
}

/** The policy numbers of {@link CircuitBreakerConfig}, without the clock. */
export type CircuitBreakerLimits = Omit<CircuitBreakerConfig, 'clock' | 'allowWarmUp'>;

/**
 * Checks the policy numbers given, each with the constructor's range; a bound that depends on
 * another field (`backoffMaxMs` on `resetTimeoutMs`, `probeSuccessThreshold` on `probes`) only
 * when both are given: for options arriving as data, whose missing fields are filled in later.
 * @throws ConfigError whose field is `<prefix>.<name>`, e.g. "breaker.failureRateThreshold".
 * @example
 * checkCircuitBreakerConfig({ failureRateThreshold: 0.25 });
 */
export function checkCircuitBreakerConfig(config: CircuitBreakerLimits, prefix = 'breaker'): void {
  const check = (field: keyof CircuitBreakerLimits, ok: (value: number) => boolean, problem: string): void => {
    const value = config[field];
    if (value !== undefined && !ok(value)) throw new ConfigError(`${prefix}.${field}`, `${problem}, got ${value}`);
  };
  const ms = (value: number): boolean => Number.isFinite(value) && value > 0;
  const { resetTimeoutMs, probes } = config;
  check('failureRateThreshold', (rate) => rate > 0 && rate <= 1, 'must be a share above 0 and at most 1');
  check('minimumCalls', (n) => Number.isInteger(n) && n >= 1, 'must be a whole number >= 1');
  check('windowMs', ms, 'must be a positive number of milliseconds');
  check('windowBuckets', (n) => Number.isInteger(n) && n >= 1 && n <= 1_000, 'must be a whole number from 1 to 1000');
  check('resetTimeoutMs', ms, 'must be a positive number of milliseconds');
  check(
    'backoffMaxMs',
    (max) => Number.isFinite(max) && max >= (resetTimeoutMs ?? 0),
    'must be a number of milliseconds >= resetTimeoutMs',
  );
  check('probes', (n) => Number.isInteger(n) && n >= 1 && n <= 1_000, 'must be a whole number from 1 to 1000');
  check(
    'probeSuccessThreshold',
    (n) => Number.isInteger(n) && n >= 1 && n <= (probes ?? 1_000),
    'must be a whole number from 1 to probes',
  );
  check('slowCallMs', (value) => value > 0, 'must be a positive number of milliseconds');
}

const savedStates: ReadonlySet<unknown> = new Set<CircuitState>(['closed', 'open', 'half-open', 'isolated']);

/**
 * Checks a saved state (it may come from a file or a KV store).
 * @throws ConfigError naming the field.
 */
export function checkSaved(saved: SavedCircuitState, prefix = 'breaker.state'): void {
  if (typeof saved !== 'object' || saved === null) throw new ConfigError(prefix, 'must be an object from toJSON()');
  if (!savedStates.has(saved.state)) {
    throw new ConfigError(`${prefix}.state`, `must be closed, open, half-open or isolated, got ${String(saved.state)}`);
  }
  const field = (name: Exclude<keyof SavedCircuitState, 'state'>, max: number): void => {
    const value = saved[name];
    if (!(typeof value === 'number' && value >= 0 && value <= max)) {
      throw new ConfigError(`${prefix}.${name}`, `must be a number from 0 to ${max}, got ${String(value)}`);
    }
  };
  field('openRemainingMs', Number.MAX_SAFE_INTEGER);
  field('openDurationMs', Number.MAX_SAFE_INTEGER);
  field('warmUpRemainingMs', Number.MAX_SAFE_INTEGER);
  // The window's counters are 32-bit.
  field('calls', 1e9);
  field('failures', saved.calls);
  if (!Number.isInteger(saved.calls) || !Number.isInteger(saved.failures)) {
    throw new ConfigError(`${prefix}.calls`, 'calls and failures must be whole numbers');
  }
}
