import { TrellisError, type ErrorCode } from '@trellis/core';

const circuitOpen: ErrorCode = 'CIRCUIT_OPEN';

/**
 * Why a breaker refused a call: `open` (it failed too often and waits out its open duration),
 * `half-open` (its probes are all out), `isolated` (held open by hand with `isolate()`).
 */
export type CircuitRefusal = 'open' | 'half-open' | 'isolated';

/** What a {@link CircuitOpenError} says. */
export interface CircuitOpenErrorOptions {
  readonly service: string;
  /** The instance, for a per-instance breaker. */
  readonly instance?: string | undefined;
  /** Why the call was refused; default `open`. */
  readonly reason?: CircuitRefusal;
  /** Milliseconds until a probe may go: 0 when half-open, `Infinity` while isolated. */
  readonly retryAfterMs: number;
}

/**
 * A circuit breaker refused a call without making it: the target failed too often recently
 * and is being left alone until probe calls show it has recovered, or it is held open by hand
 * (`reason` says which).
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

  /** Milliseconds until the breaker lets a probe call through; 0 when one may go now, `Infinity` while isolated. */
  readonly retryAfterMs: number;
  /** Why the call was refused. */
  readonly reason: CircuitRefusal;

  constructor(options: CircuitOpenErrorOptions) {
    const { service, instance, retryAfterMs } = options;
    const reason = options.reason ?? 'open';
    const target = instance === undefined ? `service "${service}"` : `instance "${instance}" of service "${service}"`;
    const detail =
      reason === 'isolated'
        ? 'is isolated (held open by hand): call not made until every isolation is released'
        : reason === 'half-open'
          ? 'is half-open with all its probe calls out: call not made'
          : `is open: call not made, next probe in ${Math.ceil(retryAfterMs)} ms`;
    super(circuitOpen, `circuit breaker for ${target} ${detail}`, {
      service,
      ...(instance === undefined ? {} : { instance }),
      retryable: instance !== undefined,
    });
    this.retryAfterMs = retryAfterMs;
    this.reason = reason;
  }

  /** True for a circuit-open error, from this copy of the package or another. */
  static override is(error: unknown): error is CircuitOpenError {
    return TrellisError.is(error) && (error.code as string) === CircuitOpenError.code;
  }
}
