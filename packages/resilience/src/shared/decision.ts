/**
 * The answer of a limiter (a rate limit, a concurrency limit) to one request for permission,
 * one type for all of them. A refusal says when to come back where the limiter can know it.
 *
 * @example
 * const decision = limiter.tryAcquire();
 * if (!decision.granted) reply.code(429).header('retry-after', Math.ceil((decision.retryAfterMs ?? 1_000) / 1_000));
 */
export type Decision =
  | { readonly granted: true }
  | {
      readonly granted: false;
      /**
       * Milliseconds until the same request could be granted (at least 1). Always given by a
       * rate limiter; absent from a concurrency limit, whose slot frees when a call ends.
       */
      readonly retryAfterMs?: number;
    };

/** The one granted decision, shared so that granting allocates nothing. */
export const granted: Decision = Object.freeze({ granted: true });

/** The one refusal without a time to come back, shared for the same reason. */
export const refused: Decision = Object.freeze({ granted: false });

/** `ms` rounded up to whole milliseconds, at least 1: a rejection always says "later". */
export function retryAfter(ms: number): Decision {
  return { granted: false, retryAfterMs: Math.max(1, Math.ceil(ms)) };
}

/**
 * True when a limiter's answer is still to come (an {@link AsyncRateLimiter}'s promise): the one
 * test that tells the two kinds apart, so that a synchronous answer is used at once, with no
 * promise and no microtask.
 */
export function isPendingDecision(decision: Decision | Promise<Decision>): decision is Promise<Decision> {
  return typeof (decision as { then?: unknown }).then === 'function';
}
