import {
  Emitter,
  type Event,
  type Filter,
  type LimitRejected,
  type Stage,
  type StageEnv,
  type TelemetryEvent,
} from '@trellis/core';
import { chooser, scopeOf, type Chosen, type LimiterChoice } from '../shared/limiter-choice.js';
import { isPendingDecision, type Decision } from '../shared/decision.js';
import { forward, neverAborted, type Policy } from '../shared/policy.js';
import { RateLimitedError } from './rate-limited-error.js';
import type { AnyRateLimiter } from './rate-limiter.js';

export interface RateLimitOptions {
  /** The stage's name, and what errors and events name as the limited thing; default "rate-limit". */
  readonly name?: string;
}

/**
 * Refuses calls beyond a rate with {@link RateLimitedError} (code `RATE_LIMITED`, with
 * `retryAfterMs`), before they cost anything downstream: a stage of a client's stack, or
 * around any function with {@link execute}. The limiter is a local one (TokenBucket,
 * SlidingWindowCounter), decided at once, or an {@link AsyncRateLimiter} such as a cluster limit
 * on Redis, whose decision is awaited; the answers are the same.
 *
 * @throws ConfigError when `perKey` comes without `key`.
 * @example
 * const mail = new ServiceClient({
 *   service: 'mail', discovery,
 *   filters: [new RateLimit(new TokenBucket({ ratePerSecond: 50, burst: 10 }))],
 * });
 */
export class RateLimit implements Stage, Policy {
  readonly name: string;
  readonly role = 'rate-limit';
  readonly #pick: (call: Parameters<ReturnType<typeof chooser>>[0]) => Chosen<AnyRateLimiter>;
  readonly #limiterEvents: Event<TelemetryEvent> | undefined;
  readonly #rejected = new Emitter<LimitRejected>();
  /** A call was refused (emitted before the caller sees the error). */
  readonly onRejected: Event<LimitRejected> = this.#rejected.event;

  constructor(limiter: LimiterChoice<AnyRateLimiter>, options: RateLimitOptions = {}) {
    this.name = options.name ?? 'rate-limit';
    this.#pick = chooser(limiter);
    this.#limiterEvents = 'onEvent' in limiter ? limiter.onEvent : undefined;
  }

  make(env: StageEnv): Filter {
    // A shared limiter's own events (its fallback to a local share) go to the stack's sink too.
    if (this.#limiterEvents === undefined) forward(env, this.onRejected);
    else forward(env, this.onRejected, this.#limiterEvents);
    return this.filter;
  }

  readonly filter: Filter = (call, context, next) => {
    const chosen = this.#pick(call);
    const decision = chosen.limiter.tryAcquire();
    if (isPendingDecision(decision)) {
      return decision.then((d) => {
        const error = this.#refusal(call.service, chosen.key, d);
        return error === undefined ? next(call, context) : Promise.reject(error);
      });
    }
    const error = this.#refusal(call.service, chosen.key, decision);
    return error === undefined ? next(call, context) : Promise.reject(error);
  };

  /**
   * Runs `fn` if the limit allows one more now.
   * @throws RateLimitedError when it does not; what `fn` throws otherwise.
   */
  execute<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const chosen = this.#pick(undefined);
    const decision = chosen.limiter.tryAcquire();
    if (isPendingDecision(decision)) {
      return decision.then((d) => {
        const error = this.#refusal(this.name, chosen.key, d);
        return error === undefined ? fn(signal ?? neverAborted) : Promise.reject(error);
      });
    }
    const error = this.#refusal(this.name, chosen.key, decision);
    return error === undefined ? fn(signal ?? neverAborted) : Promise.reject(error);
  }

  #refusal(service: string, key: string | undefined, decision: Decision): RateLimitedError | undefined {
    if (decision.granted) return undefined;
    const scope = scopeOf(this.name === 'rate-limit' ? service : this.name, key);
    // A limiter of the user's own may not say when; a second is Retry-After's smallest step.
    const retryAfterMs = decision.retryAfterMs ?? 1_000;
    const error = new RateLimitedError(scope, retryAfterMs, service);
    if (this.#rejected.hasListeners) {
      this.#rejected.emit({
        type: 'limit-rejected',
        service,
        limit: 'rate',
        scope,
        retryAfterMs,
      });
    }
    return error;
  }
}
