import { TrellisError, type ErrorCode } from '@trellis/core';

const circuitOpen: ErrorCode = 'CIRCUIT_OPEN';

/**
 * A circuit breaker refused a call without making it: the target failed too often recently
 * and is being left alone until a probe call shows it has recovered.
 *
 * Refused by a per-instance breaker, the error is retryable (another instance may well be
 * fine) and names the instance; refused by a per-service breaker, it is not retryable.
 *
 * @example
 * try { await users.get('/users/1'); }
 * catch (e) { if (CircuitOpenError.is(e)) return cachedUser(); throw e; }
 */
export class CircuitOpenError extends TrellisError {
  /** The code of this error, for matching by string (a fallback's `codes`). */
  static readonly code = 'CIRCUIT_OPEN';

  /** Milliseconds until the breaker lets a probe call through; 0 when one may go now. */
  readonly retryAfterMs: number;

  constructor(service: string, instance: string | undefined, retryAfterMs: number) {
    const target = instance === undefined ? `service "${service}"` : `instance "${instance}" of service "${service}"`;
    super(
      circuitOpen,
      `circuit breaker for ${target} is open: call not made, next probe in ${Math.ceil(retryAfterMs)} ms`,
      {
        service,
        ...(instance === undefined ? {} : { instance }),
        retryable: instance !== undefined,
      },
    );
    this.retryAfterMs = retryAfterMs;
  }

  /** True for a circuit-open error, from this copy of the package or another. */
  static override is(error: unknown): error is CircuitOpenError {
    return TrellisError.is(error) && (error.code as string) === CircuitOpenError.code;
  }
}
