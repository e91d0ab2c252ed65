import {
  ConfigError,
  TrellisError,
  UpstreamStatusError,
  type Call,
  type Filter,
  type Reply,
  type ServiceInstance,
} from '@trellis/core';

/** What a fallback answers with, in place of the target's reply. */
export interface FallbackAnswer {
  /** Default 200. */
  readonly status?: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body: unknown;
}

/**
 * Makes the answer from why the call failed. Throwing (for instance the cause itself) declines
 * to answer: the thrown error goes to the caller.
 */
export type FallbackHandler<C extends Call = Call> = (
  cause: TrellisError,
  call: C,
) => FallbackAnswer | Promise<FallbackAnswer>;

/** When a fallback answers. */
export interface FallbackOptions {
  /**
   * Error codes that bring the fallback in; default {@link defaultFallbackCodes}: an open
   * circuit, a rate-limit or bulkhead rejection, a timeout.
   */
  readonly codes?: readonly string[];
  /**
   * Whether any other retryable Trellis error brings it in (what reaches a fallback placed
   * outside the retry filter once retries are exhausted); default true.
   */
  readonly retryable?: boolean;
  /**
   * Whether failing replies bring it in: `true` for any 5xx, or a predicate; default false.
   * The cause is then an {@link UpstreamStatusError} carrying the reply's status and body.
   */
  readonly failureReplies?: boolean | ((reply: Reply) => boolean);
}

/** The codes that bring a fallback in by default. */
export const defaultFallbackCodes: readonly string[] = ['CIRCUIT_OPEN', 'RATE_LIMITED', 'BULKHEAD_FULL', 'TIMEOUT'];

/** The response header a fallback answer carries, set to the code of the cause. */
export const fallbackHeader = 'x-trellis-fallback';

/** The id of the instance a fallback answer names as its source (a reply always names one). */
export const fallbackInstanceId = 'fallback';

/**
 * A filter that answers in place of the target when the call fails for a reason the caller
 * would rather not see: an open circuit, a rate-limit or bulkhead rejection, a timeout, or
 * retries exhausted (optionally also a 5xx reply). The answer is a fixed value or made by a
 * function that receives the cause. An answer carries the header `x-trellis-fallback: <code>`
 * and names a stand-in instance with id `fallback`, so that a caller can tell it apart.
 *
 * A call whose own signal aborted never falls back: the caller has stopped waiting.
 * Place it outermost of the resilience filters, so that it sees what they give up on.
 *
 * @throws ConfigError when `answer` is neither a function nor an object with a `body`.
 * @example
 * const users = new ServiceClient({
 *   service: 'users', discovery,
 *   filters: [fallback((cause) => ({ body: cache.get('users') ?? [] })), serviceCircuitBreaker(breakers)],
 * });
 */
export function fallback<C extends Call = Call>(
  answer: FallbackAnswer | FallbackHandler<C>,
  options: FallbackOptions = {},
): Filter<C, Reply> {
  if (typeof answer !== 'function' && (typeof answer !== 'object' || answer === null || !('body' in answer))) {
    throw new ConfigError('fallback.answer', 'must be a function or an object with a `body`');
  }
  const codes: ReadonlySet<string> = new Set(options.codes ?? defaultFallbackCodes);
  const onRetryable = options.retryable ?? true;
  const failureReplies = options.failureReplies ?? false;
  const isFailureReply =
    failureReplies === true
      ? (reply: Reply) => reply.status >= 500
      : failureReplies === false
        ? undefined
        : failureReplies;
  const answerFor: FallbackHandler<C> = typeof answer === 'function' ? answer : () => answer;

  const reply = async (cause: TrellisError, call: C): Promise<Reply> => {
    const made = await answerFor(cause, call);
    return {
      status: made.status ?? 200,
      headers: { ...made.headers, [fallbackHeader]: cause.code },
      body: made.body,
      instance: standIn(call.service),
    };
  };

  return async (call, next) => {
    let result: Reply;
    try {
      result = await next(call);
    } catch (error) {
      if (
        call.signal?.aborted !== true &&
        TrellisError.is(error) &&
        (codes.has(error.code) || (onRetryable && error.retryable))
      ) {
        return reply(error, call);
      }
      throw error;
    }
    if (isFailureReply === undefined || call.signal?.aborted === true || !isFailureReply(result)) return result;
    const cause = new UpstreamStatusError(call.service, result.instance.id, result.status, result.body);
    return reply(cause, call);
  };
}

function standIn(service: string): ServiceInstance {
  return { id: fallbackInstanceId, service, address: '', port: 0, tags: [], meta: { weight: 0, labels: {} } };
}
