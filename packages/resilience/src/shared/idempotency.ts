import type { Call } from '@trellis/core';

// RFC 9110 §9.2.2.
const idempotentMethods = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * Whether a call may run twice: its method is idempotent (GET, HEAD, OPTIONS, TRACE, PUT,
 * DELETE), or it carries an `Idempotency-Key` header (how a POST opts in).
 */
export function isIdempotent(call: Call): boolean {
  if (idempotentMethods.has(call.method)) return true;
  for (const name in call.headers) if (name.toLowerCase() === 'idempotency-key') return true;
  return false;
}
