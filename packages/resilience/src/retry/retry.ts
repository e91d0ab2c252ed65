import {
  ConfigError,
  ConnectionError,
  Emitter,
  NoInstancesError,
  sleep,
  systemClock,
  TrellisError,
  type Call,
  type CallContext,
  type Clock,
  type Event,
  type Filter,
  type Reply,
  type RetryRefused,
  type RetryScheduled,
  type Stage,
  type StageEnv,
} from '@trellis/core';
import { isIdempotent } from '../shared/idempotency.js';
import { forward, neverAborted, type Policy } from '../shared/policy.js';
import { RetryBudget } from './retry-budget.js';

export interface RetryOptions {
  /** Attempts in all, the first included; default 3. */
  readonly maxAttempts?: number;
  /** Cap of the first backoff; each later one doubles, up to `backoffMaxMs`; default 25 ms. */
  readonly backoffBaseMs?: number;
  /** Largest backoff cap; default 250 ms. */
  readonly backoffMaxMs?: number;
  /**
   * The budget retries draw from; default a new `RetryBudget()` (a fifth of calls over 10 s
   * plus 10 per second) for this policy alone. `false` retries without a budget (not advised).
   */
  readonly budget?: RetryBudget | false;
  /**
   * Whether a call may run twice. Default: the caller's per-call `idempotent`, else its method
   * is idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) or it carries an `Idempotency-Key`.
   */
  readonly idempotent?: (call: Call) => boolean;
  /**
   * For {@link Retry.execute}: whether an error is worth another try. Default: Trellis errors
   * that say `retryable`, and any error that is not a Trellis error.
   */
  readonly retryOn?: (error: unknown) => boolean;
  /** What {@link Retry.execute}'s events name as their `service` (a database, a queue); default "execute". */
  readonly service?: string;
  /** Time for backoffs and the budget; default the system clock (a client hands its own). */
  readonly clock?: Clock;
  /** Uniform in [0, 1): draws the jitter; default Math.random. */
  readonly random?: () => number;
}

/** The plain-number fields of {@link RetryOptions}, which {@link Retry.update} may change. */
export type RetryLimits = Pick<RetryOptions, 'maxAttempts' | 'backoffBaseMs' | 'backoffMaxMs'>;

/**
 * Checks the attempts and backoffs given, each with the constructor's range (`backoffMaxMs`
 * against `backoffBaseMs` only when both are given): for options arriving as data, whose
 * missing fields are filled in later.
 * @throws ConfigError whose field is `<prefix>.<name>`, e.g. "retry.maxAttempts".
 * @example
 * checkRetryLimits({ maxAttempts: 2 }, 'client.retry');
 */
export function checkRetryLimits(options: RetryLimits, prefix = 'retry'): void {
  const { maxAttempts, backoffBaseMs, backoffMaxMs } = options;
  if (maxAttempts !== undefined && !(Number.isInteger(maxAttempts) && maxAttempts >= 1)) {
    throw new ConfigError(`${prefix}.maxAttempts`, `must be an integer >= 1, got ${maxAttempts}`);
  }
  if (backoffBaseMs !== undefined && !(Number.isFinite(backoffBaseMs) && backoffBaseMs >= 0)) {
    throw new ConfigError(`${prefix}.backoffBaseMs`, `must be a number of milliseconds >= 0, got ${backoffBaseMs}`);
  }
  if (
    backoffMaxMs !== undefined &&
    !(
      Number.isFinite(backoffMaxMs) && (backoffBaseMs === undefined ? backoffMaxMs >= 0 : backoffMaxMs >= backoffBaseMs)
    )
  ) {
    throw new ConfigError(
      `${prefix}.backoffMaxMs`,
      `must be a number of milliseconds >= backoffBaseMs, got ${backoffMaxMs}`,
    );
  }
}

/** What one call's retries run on: read once when the call starts, so a change applies to the next call. */
interface RetryPolicy {
  readonly maxAttempts: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly budget: RetryBudget | undefined;
}

const retryableStatuses = new Set([502, 503, 504]);

/** A failure the call may be tried again after, and whether it certainly never reached an instance. */
type Verdict = 'final' | 'not-sent' | 'sent';

/**
 * Tries a failed call again, each time on another instance when one is left (the failed
 * instance joins `context.avoid`), within a {@link RetryBudget}.
 *
 * As a stage (a ServiceClient has one, named "retry"): retryable are a connection refused or
 * reset, a 502 / 503 / 504 answer, and Trellis errors marked `retryable` (an attempt's TIMEOUT,
 * a per-instance breaker's CIRCUIT_OPEN). What may have reached an instance is retried only for
 * an idempotent call; what certainly did not (refused, open circuit) is retried for any call, at
 * once. Other retries wait a backoff with full jitter: uniform in
 * [0, min(backoffMaxMs, backoffBaseMs × 2^(n-1))) before retry n, on the injected clock; the
 * call's signal ends the wait. When attempts or the budget run out, the last answer is returned
 * or the last error thrown, as they were. A call made with `retry: false` is tried once.
 *
 * Beyond HTTP, {@link execute} retries any async function the same way.
 *
 * @throws ConfigError for an option out of range, naming it.
 * @example
 * const users = new ServiceClient({ service: 'users', discovery, retry: { maxAttempts: 2 } });
 * const retry = new Retry({ service: 'orders-db', maxAttempts: 4 });
 * const rows = await retry.execute((signal) => db.query('select * from orders', { signal }));
 */
export class Retry implements Stage, Policy {
  readonly name = 'retry';
  readonly role = 'retry';
  readonly level = 'call';
  #policy: RetryPolicy;
  readonly #idempotent: ((call: Call) => boolean) | undefined;
  readonly #retryOn: (error: unknown) => boolean;
  readonly #label: string;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #scheduled = new Emitter<RetryScheduled>();
  readonly #refused = new Emitter<RetryRefused>();
  /** A call is tried again. */
  readonly onRetryScheduled: Event<RetryScheduled> = this.#scheduled.event;
  /** A retryable failure was not retried because the budget was spent: a sign of a wide outage. */
  readonly onRetryRefused: Event<RetryRefused> = this.#refused.event;

  constructor(options: RetryOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#idempotent = options.idempotent;
    this.#retryOn = options.retryOn ?? ((error) => !TrellisError.is(error) || error.retryable);
    this.#label = options.service ?? 'execute';
    this.#policy = resolvePolicy(options, () => new RetryBudget({ clock: this.#clock }));
  }

  /** Attempts in all, the first included. */
  get maxAttempts(): number {
    return this.#policy.maxAttempts;
  }

  get backoffBaseMs(): number {
    return this.#policy.backoffBaseMs;
  }

  get backoffMaxMs(): number {
    return this.#policy.backoffMaxMs;
  }

  /** The budget retries draw from; undefined without one. */
  get budget(): RetryBudget | undefined {
    return this.#policy.budget;
  }

  /**
   * Changes the attempts, backoffs and budget from the next call on, all or nothing: fields left
   * out take the constructor's defaults, except `budget`, which left out keeps the one in use
   * (and its balance). A call already retrying finishes on the policy it started with.
   * `idempotent`, `retryOn`, `service`, the clock and the random source stay as constructed.
   * @throws ConfigError for an option out of range, naming it; nothing changes then.
   * @example
   * const retry = new Retry();
   * retry.update({ maxAttempts: 1 }); // an incident: no retries for now
   */
  update(options: RetryLimits & Pick<RetryOptions, 'budget'>): void {
    const current = this.#policy.budget;
    this.#policy = resolvePolicy(options, () => current);
  }

  /** The stage's filter; its events go to the stack's telemetry too. */
  make(env: StageEnv): Filter {
    forward(env, this.onRetryScheduled, this.onRetryRefused);
    return this.filter;
  }

  /** The HTTP filter, for a stack of your own. */
  readonly filter: Filter = async (call, context, next) => {
    if (!context.retry) return next(call, context);
    const policy = this.#policy;
    policy.budget?.deposit();
    let current = context;
    let avoiding = false;
    let backoffs = 0;
    for (let attempt = 1; attempt <= policy.maxAttempts; attempt++) {
      let verdict: Verdict;
      let failed: string | undefined;
      let reply: Reply | undefined;
      let error: unknown;
      try {
        reply = await next(call, current);
        if (!retryableStatuses.has(reply.status)) return reply;
        verdict = 'sent';
        failed = reply.instance.id;
      } catch (caught) {
        if (NoInstancesError.is(caught) && avoiding) {
          // Every instance left was avoided: try them again rather than fail for want of a
          // fresh one (a single instance answering 503 deserves its retries too).
          current = this.#next(context, current.attempt, context.avoid);
          avoiding = false;
          attempt--;
          continue;
        }
        error = caught;
        verdict = verdictOf(caught);
        failed = TrellisError.is(caught) ? caught.instance : undefined;
      }
      const giveUp =
        verdict === 'final' ||
        attempt >= policy.maxAttempts ||
        (verdict === 'sent' && !this.#mayRepeat(call, context)) ||
        context.aborted ||
        !this.#withdraw(policy, call.service, attempt);
      if (giveUp) {
        if (reply !== undefined) return reply;
        throw error;
      }
      const delay = verdict === 'sent' ? this.#delay(policy, backoffs++) : 0;
      if (this.#scheduled.hasListeners) {
        const reason = reply !== undefined ? `HTTP ${reply.status}` : TrellisError.is(error) ? error.code : 'error';
        this.#scheduled.emit({
          type: 'retry-scheduled',
          service: call.service,
          attempt,
          instance: failed,
          reason,
          delayMs: delay,
        });
      }
      if (delay > 0) await sleep(this.#clock, delay, context.signal);
      if (failed !== undefined) avoiding = true;
      current = this.#next(
        context,
        current.attempt + 1,
        failed === undefined ? current.avoid : new Set(current.avoid).add(failed),
      );
    }
    // Unreachable: the last attempt returns or throws above.
    throw new Error('retry: attempts exhausted without an outcome');
  };

  /**
   * Runs `fn`, and again after a failure that {@link RetryOptions.retryOn} accepts, with the same
   * backoff and budget as calls, until it succeeds, attempts run out or `signal` aborts.
   * @throws the last error of `fn`, or the signal's reason.
   */
  async execute<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const given = signal ?? neverAborted;
    const policy = this.#policy;
    policy.budget?.deposit();
    for (let attempt = 1, backoffs = 0; ; attempt++) {
      try {
        return await fn(given);
      } catch (error) {
        if (
          attempt >= policy.maxAttempts ||
          given.aborted ||
          !this.#retryOn(error) ||
          !this.#withdraw(policy, this.#label, attempt)
        ) {
          throw error;
        }
        const delay = this.#delay(policy, backoffs++);
        if (this.#scheduled.hasListeners) {
          const reason = TrellisError.is(error) ? error.code : error instanceof Error ? error.name : 'error';
          this.#scheduled.emit({
            type: 'retry-scheduled',
            service: this.#label,
            attempt,
            instance: undefined,
            reason,
            delayMs: delay,
          });
        }
        if (delay > 0) await sleep(this.#clock, delay, signal);
      }
    }
  }

  #next(context: CallContext, attempt: number, avoid: ReadonlySet<string> | undefined): CallContext {
    const next = context.fork();
    next.attempt = attempt;
    next.avoid = avoid;
    return next;
  }

  #mayRepeat(call: Call, context: CallContext): boolean {
    if (this.#idempotent !== undefined) return this.#idempotent(call);
    return context.idempotent ?? isIdempotent(call);
  }

  #withdraw(policy: RetryPolicy, service: string, attempt: number): boolean {
    if (policy.budget === undefined || policy.budget.tryWithdraw()) return true;
    if (this.#refused.hasListeners) this.#refused.emit({ type: 'retry-refused', service, attempt, reason: 'budget' });
    return false;
  }

  #delay(policy: RetryPolicy, backoffs: number): number {
    return this.#random() * Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** backoffs);
  }
}

// Defaults and checks; `budget` left out is `otherwise()`.
function resolvePolicy(
  options: RetryLimits & Pick<RetryOptions, 'budget'>,
  otherwise: () => RetryBudget | undefined,
): RetryPolicy {
  const maxAttempts = options.maxAttempts ?? 3;
  const backoffBaseMs = options.backoffBaseMs ?? 25;
  const backoffMaxMs = options.backoffMaxMs ?? 250;
  checkRetryLimits({ maxAttempts, backoffBaseMs, backoffMaxMs });
  const given = options.budget;
  return { maxAttempts, backoffBaseMs, backoffMaxMs, budget: given === false ? undefined : (given ?? otherwise()) };
}

function verdictOf(error: unknown): Verdict {
  if (ConnectionError.is(error)) return error.sent ? 'sent' : 'not-sent';
  if (!TrellisError.is(error) || !error.retryable) return 'final';
  // An open per-instance breaker refused the call here: the instance never saw it.
  return error.code === 'CIRCUIT_OPEN' ? 'not-sent' : 'sent';
}
