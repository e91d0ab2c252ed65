import type { ServiceInstance } from './service-instance.js';

/** An outbound HTTP call to a service, named by the service, never by an address. */
export interface Call {
  /** Logical name of the target service. */
  readonly service: string;
  /** HTTP method in upper case. */
  readonly method: string;
  /** Path with its query string, starting with "/". */
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Request body; objects are sent as JSON. */
  readonly body?: unknown;
  /** Cancels the call when aborted. */
  readonly signal?: AbortSignal;
  /** Ids of instances this call must not be sent to (ones an earlier attempt found dead). */
  readonly avoid?: ReadonlySet<string>;
}

/**
 * A call with its instance chosen: what per-attempt filters (a per-instance breaker, a timeout,
 * fault injection) and the transport see. One {@link Call} may make several attempts.
 */
export interface Attempt extends Call {
  readonly instance: ServiceInstance;
}

/** The answer to a {@link Call}: whatever HTTP status the instance answered with. */
export interface Reply<T = unknown> {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: T;
  /** The instance that answered. */
  readonly instance: ServiceInstance;
}

/** A call as a function (Finagle's "your server as a function"). */
export type Service<C = Call, R = Reply> = (call: C) => Promise<R>;

/**
 * One governance concern around a {@link Service}: it may change the call, decide not to make
 * it, retry it, or observe the reply, and calls `next` to go on.
 *
 * @example
 * const stamp: Filter = (call, next) =>
 *   next({ ...call, headers: { ...call.headers, 'x-caller': 'forum' } });
 */
export type Filter<C = Call, R = Reply> = (call: C, next: Service<C, R>) => Promise<R>;

/**
 * Wraps `service` in `filters`, the first filter outermost. The chain is built once here, so
 * a call through it allocates nothing for the composition itself.
 *
 * @example
 * const send = compose([trace, metrics], service);
 * const reply = await send(call);
 */
export function compose<C, R>(filters: readonly Filter<C, R>[], service: Service<C, R>): Service<C, R> {
  let next = service;
  for (let i = filters.length - 1; i >= 0; i--) {
    const filter = filters[i] as Filter<C, R>;
    const inner = next;
    next = (call) => filter(call, inner);
  }
  return next;
}
