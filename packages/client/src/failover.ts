import { ConnectionError, type Filter } from '@trellis/core';

// RFC 9110 §9.2.2: a client may resend these after a connection failure without asking anyone.
const idempotentMethods = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * Sends a call to another instance when the connection to the first failed before any answer,
 * and resending cannot run it twice: either it certainly never arrived (connection refused: the
 * instance has just stopped and this process's cache does not know yet), or its method is
 * idempotent (a pooled connection that the instance closed as the call went out). Other
 * failures are left to the retry policy.
 *
 * @param maxAttempts attempts in all, the first included; default 3.
 */
export function failover(maxAttempts = 3): Filter {
  return async (call, next) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(call);
      } catch (error) {
        if (
          !ConnectionError.is(error) ||
          (error.sent && !idempotentMethods.has(call.method)) ||
          error.instance === undefined ||
          attempt >= maxAttempts
        ) {
          throw error;
        }
        call = { ...call, avoid: new Set(call.avoid).add(error.instance) };
      }
    }
  };
}
