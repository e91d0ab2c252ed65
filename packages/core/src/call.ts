import type { CallContext } from './call-context.js';
import type { ServiceInstance } from './service-instance.js';

/**
 * An outbound HTTP call to a service, named by the service, never by an address. A call is
 * plain data: what travels beside it (the signal, the deadline, the attempt, the chosen
 * instance) is in its {@link CallContext}, so copying a call with a spread loses nothing.
 */
export interface Call {
  /** Logical name of the target service. */
  readonly service: string;
  /** HTTP method in upper case. */
  readonly method: string;
  /** Path with its query string, starting with "/". */
  readonly path: string;
  /**
   * The route template the path was made from, e.g. "/users/:id": what metrics and traces name
   * the call by (`route` label, `url.template`), since the path itself is unbounded.
   */
  readonly template?: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Request body; objects are sent as JSON. */
  readonly body?: unknown;
}

/** The answer to a {@link Call}: whatever HTTP status the instance answered with. */
export interface Reply<T = unknown> {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: T;
  /** The instance that answered. */
  readonly instance: ServiceInstance;
}

/** A call as a function (Finagle's "your server as a function"): the call, and its context beside it. */
export type Service = (call: Call, context: CallContext) => Promise<Reply>;

/**
 * One governance concern around a {@link Service}: it may change the call, decide not to make
 * it, retry it, or observe the reply, and calls `next` to go on. What it learns or decides for
 * the stages below (an instance, a signal) goes in the context, never in the call.
 *
 * @example
 * const stamp: Filter = (call, context, next) =>
 *   next({ ...call, headers: { ...call.headers, 'x-caller': 'forum' } }, context);
 */
export type Filter = (call: Call, context: CallContext, next: Service) => Promise<Reply>;

/**
 * Wraps `service` in `filters`, the first filter outermost. The chain is built once here, so
 * a call through it allocates nothing for the composition itself.
 *
 * @example
 * const send = compose([trace, metrics], async () => ({ status: 204, headers: {}, body: null, instance }));
 * const reply = await send(call, new CallContext());
 */
export function compose(filters: readonly Filter[], service: Service): Service {
  let next = service;
  for (let i = filters.length - 1; i >= 0; i--) {
    const filter = filters[i] as Filter;
    const inner = next;
    next = (call, context) => filter(call, context, inner);
  }
  return next;
}
