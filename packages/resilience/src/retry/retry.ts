import {
  ConfigError,
  ConnectionError,
  Emitter,
  NoInstancesError,
  sleep,
  systemClock,
  TrellisError,
  type Call,
  type Clock,
  type Event,
  type Filter,
  type Reply,
} from '@trellis/core';
import { isIdempotent } from '../shared/idempotency.js';
import { withCall } from '../shared/lazy-signal-call.js';
import { RetryBudget } from './retry-budget.js';

export interface RetryOptions {
  /** Attempts in all, the first included; default 3. */
  readonly maxAttempts?: number;
  /** Cap of the first backoff; each later one doubles, up to `maxDelayMs`; default 25 ms. */
  readonly baseDelayMs?: number;
  /** Largest backoff cap; default 250 ms. */
  readonly maxDelayMs?: number;
  /**
   * The budget retries draw from; default a new `RetryBudget()` (20% of calls over 10 s plus
   * 10 per second) for this filter alone. `false` retries without a budget (not advised).
   */
  readonly budget?: RetryBudget | false;
  /**
   * Whether a call may run twice. Default: its method is idempotent (GET, HEAD, OPTIONS, TRACE,
   * PUT, DELETE), or the call carries an `Idempotency-Key` header (the call opts in).
   */
  readonly idempotent?: (call: Call) => boolean;
  readonly clock?: Clock;
  /** Uniform in [0, 1): draws the jitter; default Math.random. */
  readonly random?: () => number;
}

const retryableStatuses = new Set([502, 503, 504]);

/** What a retry filter tells its listeners when it tries a call again. */
export interface RetryEvent {
  readonly service: string;
  /** The attempt that failed, from 1. */
  readonly attempt: number;
  /** The instance that failed, when known. */
  readonly instance: string | undefined;
  /** Why: `HTTP 503`, or the error's code (`CONNECTION_FAILED`, `TIMEOUT`, `CIRCUIT_OPEN`, …). */
  readonly reason: string;
  /** The backoff before the next attempt (0 for a call that never reached an instance). */
  readonly delayMs: number;
}

/** A retry filter, with events for metrics and logs. */
export interface RetryFilter extends Filter<Call, Reply> {
  /** A call is tried again. */
  readonly onRetry: Event<RetryEvent>;
  /** A retryable failure was not retried because the budget was spent: a sign of a wide outage. */
  readonly onBudgetExhausted: Event<{ readonly service: string; readonly attempt: number }>;
}

/** A failure the call may be tried again after, and whether it certainly never reached an instance. */
type Verdict = 'final' | 'not-sent' | 'sent';

/**
 * Tries a call again after a retryable failure, each time on another instance when one is
 * left (the failed instance joins `call.avoid`), within a {@link RetryBudget}.
 *
 * Retryable: a connection refused or reset, a 502 / 503 / 504 answer, and Trellis errors marked
 * `retryable` (an attempt's TIMEOUT, a per-instance breaker's CIRCUIT_OPEN). What may have reached
 * an instance is retried only for an idempotent call; what certainly did not (refused, open
 * circuit) is retried for any call, at once. Other retries wait a backoff with full jitter:
 * uniform in [0, min(maxDelayMs, baseDelayMs × 2^(n-1))) before retry n, on the injected clock;
 * the call's signal ends the wait. When attempts or the budget run out, the last answer is
 * returned or the last error thrown, as they were.
 *
 * This subsumes ServiceClient's built-in `failover()`: use one or the other, not both.
 *
 * @throws ConfigError for an option out of range, naming it.
 * @example
 * const budget = new RetryBudget();
 * new ServiceClient({ service: 'users', discovery, filters: [retry({ budget, maxAttempts: 3 })] });
 */
export function retry(options: RetryOptions = {}): RetryFilter {
  const maxAttempts = options.maxAttempts ?? 3;
  const baseDelayMs = options.baseDelayMs ?? 25;
  const maxDelayMs = options.maxDelayMs ?? 250;
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const idempotent = options.idempotent ?? isIdempotent;
  if (!(Number.isInteger(maxAttempts) && maxAttempts >= 1)) {
    throw new ConfigError('maxAttempts', `must be an integer >= 1, got ${maxAttempts}`);
  }
  if (!(Number.isFinite(baseDelayMs) && baseDelayMs >= 0)) {
    throw new ConfigError('baseDelayMs', `must be a number of milliseconds >= 0, got ${baseDelayMs}`);
  }
  if (!(Number.isFinite(maxDelayMs) && maxDelayMs >= baseDelayMs)) {
    throw new ConfigError('maxDelayMs', `must be a number of milliseconds >= baseDelayMs, got ${maxDelayMs}`);
  }
  const budget = options.budget === false ? undefined : (options.budget ?? new RetryBudget({ clock }));

  const retried = new Emitter<RetryEvent>();
  const exhausted = new Emitter<{ readonly service: string; readonly attempt: number }>();

  const filter: Filter<Call, Reply> = async (call, next) => {
    budget?.deposit();
    let current = call;
    let avoiding = false;
    let backoffs = 0;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      let verdict: Verdict;
      let failed: string | undefined;
      let reply: Reply | undefined;
      let error: unknown;
      try {
        reply = await next(current);
        if (!retryableStatuses.has(reply.status)) return reply;
        verdict = 'sent';
        failed = reply.instance.id;
      } catch (caught) {
        if (NoInstancesError.is(caught) && avoiding) {
          // Every instance left was avoided: try them again rather than fail for want of a
          // fresh one (a single instance answering 503 deserves its retries too).
          current = withCall(current, { avoid: call.avoid });
          avoiding = false;
          attempt--;
          continue;
        }
        error = caught;
        verdict = verdictOf(caught);
        failed = TrellisError.is(caught) ? caught.instance : undefined;
      }
      let giveUp =
        verdict === 'final' ||
        attempt >= maxAttempts ||
        (verdict === 'sent' && !idempotent(call)) ||
        current.signal?.aborted === true;
      if (!giveUp && budget !== undefined && !budget.tryWithdraw()) {
        giveUp = true;
        if (exhausted.hasListeners) exhausted.emit({ service: call.service, attempt });
      }
      if (giveUp) {
        if (reply !== undefined) return reply;
        throw error;
      }
      const delay = verdict === 'sent' ? random() * Math.min(maxDelayMs, baseDelayMs * 2 ** backoffs++) : 0;
      if (retried.hasListeners) {
        const reason = reply !== undefined ? `HTTP ${reply.status}` : TrellisError.is(error) ? error.code : 'error';
        retried.emit({ service: call.service, attempt, instance: failed, reason, delayMs: delay });
      }
      if (delay > 0) await sleep(clock, delay, current.signal);
      if (failed !== undefined) {
        current = withCall(current, { avoid: new Set(current.avoid).add(failed) });
        avoiding = true;
      }
    }
    // Unreachable: the last attempt returns or throws above.
    throw new Error('retry: attempts exhausted without an outcome');
  };
  return Object.assign(filter, { onRetry: retried.event, onBudgetExhausted: exhausted.event });
}

function verdictOf(error: unknown): Verdict {
  if (ConnectionError.is(error)) return error.sent ? 'sent' : 'not-sent';
  if (!TrellisError.is(error) || !error.retryable) return 'final';
  // An open per-instance breaker refused the call here: the instance never saw it.
  return (error.code as string) === 'CIRCUIT_OPEN' ? 'not-sent' : 'sent';
}
