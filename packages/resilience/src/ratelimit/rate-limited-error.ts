import { TrellisError, type ErrorCode } from '@trellis/core';

const rateLimitedCode: ErrorCode = 'RATE_LIMITED';

/**
 * A rate limit refused the call. `retryAfterMs` says when the same key can next be served;
 * `retryable` is false because trying again at once meets the same limit.
 *
 * @example
 * try { await users.get('/users/1'); }
 * catch (e) { if (RateLimitedError.is(e)) reply.header('retry-after', Math.ceil(e.retryAfterMs / 1000)); }
 */
export class RateLimitedError extends TrellisError {
  /** Milliseconds until a call with the same key can be allowed (at least 1). */
  readonly retryAfterMs: number;
  /** What was limited: the limiter's name and key, e.g. `users:caller=forum`. */
  readonly scope: string;

  constructor(scope: string, retryAfterMs: number, service?: string) {
    super(rateLimitedCode, `rate limit of ${scope} reached; retry in ${retryAfterMs} ms`, {
      retryable: false,
      ...(service === undefined ? {} : { service }),
    });
    this.scope = scope;
    this.retryAfterMs = retryAfterMs;
  }

  static override is(error: unknown): error is RateLimitedError {
    return TrellisError.is(error) && error.code === rateLimitedCode;
  }
}
