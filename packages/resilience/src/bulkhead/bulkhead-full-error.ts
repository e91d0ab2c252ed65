import { TrellisError, type ErrorCode } from '@trellis/core';

const bulkheadFullCode: ErrorCode = 'BULKHEAD_FULL';

/**
 * A concurrency limit (bulkhead) refused the call: every slot was taken and the queue was full,
 * or the call waited in the queue longer than the queue timeout.
 */
export class BulkheadFullError extends TrellisError {
  /** What was limited: the limiter's name and key. */
  readonly scope: string;

  constructor(scope: string, detail: string, service?: string) {
    super(bulkheadFullCode, `concurrency limit of ${scope} reached: ${detail}`, {
      retryable: false,
      ...(service === undefined ? {} : { service }),
    });
    this.scope = scope;
  }

  static override is(error: unknown): error is BulkheadFullError {
    return TrellisError.is(error) && error.code === bulkheadFullCode;
  }
}
