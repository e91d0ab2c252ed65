import { ConnectionError, type Filter, type Stage } from '@trellis/core';

// RFC 9110 §9.2.2: a client may resend these after a connection failure without asking anyone.
const idempotentMethods = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * What a ServiceClient's "retry" stage does with `retry: false`: sends a call to another
 * instance when the connection to the first failed before any answer, and resending cannot run
 * it twice: either it certainly never arrived (connection refused: the instance has just
 * stopped and this process's cache does not know yet), or its method is idempotent (a pooled
 * connection that the instance closed as the call went out). Nothing else is retried.
 *
 * @example
 * const users = new ServiceClient({ service: 'users', discovery, retry: false }); // failover only
 */
export function failover(options: { readonly maxAttempts?: number } = {}): Stage {
  const filter = failoverFilter(options.maxAttempts ?? 3);
  return { name: 'retry', role: 'retry', level: 'call', make: () => filter };
}

/** The filter of {@link failover}. */
export function failoverFilter(maxAttempts: number): Filter {
  return async (call, context, next) => {
    let current = context;
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(call, current);
      } catch (error) {
        if (
          !context.retry ||
          !ConnectionError.is(error) ||
          (error.sent && !(context.idempotent ?? idempotentMethods.has(call.method))) ||
          error.instance === undefined ||
          attempt >= maxAttempts
        ) {
          throw error;
        }
        const avoid = new Set(current.avoid).add(error.instance);
        current = context.fork();
        current.attempt = attempt + 1;
        current.avoid = avoid;
      }
    }
  };
}
