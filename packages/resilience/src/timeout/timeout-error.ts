import { TrellisError, type ErrorCode } from '@trellis/core';

const timeoutCode: ErrorCode = 'TIMEOUT';

/** Which time limit ran out: one attempt's, or the whole call's (all its attempts and waits). */
export type TimeoutScope = 'attempt' | 'deadline';

/**
 * A call took longer than its time limit and was cancelled. An attempt's timeout is retryable
 * (another instance may answer in time); a deadline's is not (the caller's time is up).
 *
 * @example
 * try { return await users.get('/users/1'); }
 * catch (e) { if (TimeoutError.is(e) && e.scope === 'deadline') return cachedAnswer; throw e; }
 */
export class TimeoutError extends TrellisError {
  readonly scope: TimeoutScope;
  readonly timeoutMs: number;

  constructor(scope: TimeoutScope, timeoutMs: number, service: string, instance?: string) {
    const where = instance === undefined ? '' : ` at instance "${instance}"`;
    const what = scope === 'attempt' ? 'attempt' : 'call (deadline)';
    super(timeoutCode, `${what} to service "${service}"${where} timed out after ${timeoutMs} ms`, {
      service,
      retryable: scope === 'attempt',
      ...(instance === undefined ? {} : { instance }),
    });
    this.scope = scope;
    this.timeoutMs = timeoutMs;
  }

  static override is(error: unknown): error is TimeoutError {
    return TrellisError.is(error) && error.code === timeoutCode;
  }
}
