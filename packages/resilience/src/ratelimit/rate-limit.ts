import { Emitter, type Event, type Filter, type LimitRejected, type Stage, type StageEnv } from '@trellis/core';
import { chooser, scopeOf, type Chosen, type LimiterChoice } from '../shared/limiter-choice.js';
import { forward, neverAborted, type Policy } from '../shared/policy.js';
import { RateLimitedError } from './rate-limited-error.js';
import type { RateLimiter } from './rate-limiter.js';

export interface RateLimitOptions {
  /** The stage's name, and what errors and events name as the limited thing; default "rate-limit". */
  readonly name?: string;
}

/**
 * Refuses calls beyond a rate with {@link RateLimitedError} (code `RATE_LIMITED`, with
 * `retryAfterMs`), before they cost anything downstream: a stage of a client's stack, or
 * around any function with {@link execute}.
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
  readonly #pick: (call: Parameters<ReturnType<typeof chooser>>[0]) => Chosen<RateLimiter>;
  readonly #rejected = new Emitter<LimitRejected>();
  /** A call was refused (emitted before the caller sees the error). */
  readonly onRejected: Event<LimitRejected> = this.#rejected.event;

  constructor(limiter: LimiterChoice<RateLimiter>, options: RateLimitOptions = {}) {
    this.name = options.name ?? 'rate-limit';
    this.#pick = chooser(limiter);
  }

  make(env: StageEnv): Filter {
    forward(env, this.onRejected);
    return this.filter;
  }

  readonly filter: Filter = (call, context, next) => {
    const error = this.#refusal(call.service, this.#pick(call));
    return error === undefined ? next(call, context) : Promise.reject(error);
  };

  /**
   * Runs `fn` if the limit allows one more now.
   * @throws RateLimitedError when it does not; what `fn` throws otherwise.
   */
  execute<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const error = this.#refusal(this.name, this.#pick(undefined));
    return error === undefined ? fn(signal ?? neverAborted) : Promise.reject(error);
  }

  #refusal(service: string, chosen: Chosen<RateLimiter>): RateLimitedError | undefined {
    const decision = chosen.limiter.tryAcquire();
    if (decision.granted) return undefined;
    const scope = scopeOf(this.name === 'rate-limit' ? service : this.name, chosen.key);
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
