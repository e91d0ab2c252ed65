import {
  ConfigError,
  Emitter,
  TrellisError,
  UpstreamStatusError,
  type Call,
  type CallContext,
  type Event,
  type FallbackAnswered,
  type Filter,
  type Reply,
  type ServiceInstance,
  type Stage,
  type StageEnv,
} from '@trellis/core';
import { forward, neverAborted, type Policy } from '../shared/policy.js';

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
export type FallbackHandler = (cause: TrellisError, call: Call | undefined) => FallbackAnswer | Promise<FallbackAnswer>;

/** When a fallback answers. */
export interface FallbackOptions {
  /** The stage's name; default "fallback". */
  readonly name?: string;
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
 * Answers in place of the target when the call fails for a reason the caller would rather not
 * see: an open circuit, a rate-limit or bulkhead rejection, a timeout, or retries exhausted
 * (optionally also a 5xx reply). The answer is a fixed value or made by a function that
 * receives the cause. An answer carries the header `x-trellis-fallback: <code>` and names a
 * stand-in instance with id `fallback`, so that a caller can tell it apart.
 *
 * A call whose own signal aborted never falls back: the caller has stopped waiting. Put it
 * first among a client's `filters`, so that it sees what the stages below give up on. Beyond
 * HTTP, {@link execute} returns the answer's `body` in place of the function's value.
 *
 * @throws ConfigError when `answer` is neither a function nor an object with a `body`.
 * @example
 * const users = new ServiceClient({
 *   service: 'users', discovery,
 *   filters: [new Fallback((cause) => ({ body: cache.get('users') ?? [] }))],
 * });
 */
export class Fallback implements Stage, Policy {
  readonly name: string;
  readonly role = 'fallback';
  readonly #codes: ReadonlySet<string>;
  readonly #onRetryable: boolean;
  readonly #isFailureReply: ((reply: Reply) => boolean) | undefined;
  readonly #answer: FallbackHandler;
  readonly #answered = new Emitter<FallbackAnswered>();
  /** A fallback answered in place of the target. */
  readonly onFallbackAnswered: Event<FallbackAnswered> = this.#answered.event;

  constructor(answer: FallbackAnswer | FallbackHandler, options: FallbackOptions = {}) {
    if (typeof answer !== 'function' && (typeof answer !== 'object' || answer === null || !('body' in answer))) {
      throw new ConfigError('fallback.answer', 'must be a function or an object with a `body`');
    }
    this.name = options.name ?? 'fallback';
    this.#codes = new Set(options.codes ?? defaultFallbackCodes);
    this.#onRetryable = options.retryable ?? true;
    const failureReplies = options.failureReplies ?? false;
    this.#isFailureReply =
      failureReplies === true
        ? (reply: Reply) => reply.status >= 500
        : failureReplies === false
          ? undefined
          : failureReplies;
    this.#answer = typeof answer === 'function' ? answer : () => answer;
  }

  make(env: StageEnv): Filter {
    forward(env, this.onFallbackAnswered);
    return this.filter;
  }

  readonly filter: Filter = async (call, context, next) => {
    let result: Reply;
    try {
      result = await next(call, context);
    } catch (error) {
      if (this.#covers(error, context)) return this.#reply(error, call);
      throw error;
    }
    if (this.#isFailureReply === undefined || context.aborted || !this.#isFailureReply(result)) return result;
    const cause = new UpstreamStatusError(call.service, result.instance.id, result.status, result.body);
    return this.#reply(cause, call);
  };

  /**
   * Runs `fn`; when it fails for a reason this fallback covers, returns the answer's `body`.
   * @throws what `fn` throws when the fallback does not cover it.
   */
  async execute<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    try {
      return await fn(signal ?? neverAborted);
    } catch (error) {
      if (signal?.aborted === true || !this.#covers(error, undefined)) throw error;
      const made = await this.#answer(error, undefined);
      this.#report(error.service ?? 'execute', error.code);
      return made.body as T;
    }
  }

  #covers(error: unknown, context: CallContext | undefined): error is TrellisError {
    return (
      context?.aborted !== true &&
      TrellisError.is(error) &&
      (this.#codes.has(error.code) || (this.#onRetryable && error.retryable))
    );
  }

  async #reply(cause: TrellisError, call: Call): Promise<Reply> {
    const made = await this.#answer(cause, call);
    this.#report(call.service, cause.code);
    return {
      status: made.status ?? 200,
      headers: { ...made.headers, [fallbackHeader]: cause.code },
      body: made.body,
      instance: standIn(call.service),
    };
  }

  #report(service: string, cause: string): void {
    if (this.#answered.hasListeners) this.#answered.emit({ type: 'fallback-answered', service, cause });
  }
}

function standIn(service: string): ServiceInstance {
  return { id: fallbackInstanceId, service, address: '', port: 0, tags: [], meta: { weight: 0, labels: {} } };
}
