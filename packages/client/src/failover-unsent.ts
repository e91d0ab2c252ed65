import { ConnectionError, type Filter } from '@trellis/core';

/**
 * Sends a call to another instance when the first one certainly never received it (connection
 * refused: the instance has just stopped, and this process's cache does not know yet). Safe
 * for every method, since nothing ran. Calls that may have reached an instance are left to
 * the retry policy.
 *
 * @param maxAttempts attempts in all, the first included; default 3.
 */
export function failoverUnsent(maxAttempts = 3): Filter {
  return async (call, next) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(call);
      } catch (error) {
        if (!ConnectionError.is(error) || error.sent || error.instance === undefined || attempt >= maxAttempts) {
          throw error;
        }
        call = { ...call, avoid: new Set(call.avoid).add(error.instance) };
      }
    }
  };
}
