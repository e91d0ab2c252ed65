import type { Call, ServiceInstance } from '@trellis/core';

/**
 * The source of a signal made only when someone reads it. Creating an AbortSignal and listening
 * on another costs microseconds per call (about 5 µs here, against 0.15 µs for a bare async
 * call), so a timeout makes one only if something below it (the transport, a backoff wait) asks.
 */
export interface SignalSource {
  signal(): AbortSignal;
}

/** A call or an attempt, as the copy constructor reads it. */
interface CallFields {
  readonly service: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: unknown;
  readonly avoid?: ReadonlySet<string> | undefined;
  readonly instance?: ServiceInstance | undefined;
}

/** What {@link withCall} may change in a call. */
export interface CallChanges {
  readonly avoid?: ReadonlySet<string> | undefined;
  readonly instance?: ServiceInstance;
  /** Replaces the call's headers (pass the old ones spread in, to add one). */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * A copy of a call whose `signal` is a getter on a {@link SignalSource}. Built by the timeout
 * filters; keep it (and its lazy signal) through later copies with {@link withCall}, since an
 * object spread would drop the getter.
 */
export class LazySignalCall {
  readonly service: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: unknown;
  readonly avoid: ReadonlySet<string> | undefined;
  readonly instance: ServiceInstance | undefined;
  readonly #source: SignalSource;

  constructor(call: CallFields, source: SignalSource, changes?: CallChanges) {
    // Every field assigned in one order, so that all copies share one hidden class.
    this.service = call.service;
    this.method = call.method;
    this.path = call.path;
    this.headers = changes?.headers ?? call.headers;
    this.body = call.body;
    this.avoid = changes !== undefined && 'avoid' in changes ? changes.avoid : call.avoid;
    this.instance = changes?.instance ?? call.instance;
    this.#source = source;
  }

  get signal(): AbortSignal {
    return this.#source.signal();
  }

  /** The source of a call's lazy signal, if the call is one of these. */
  static sourceOf(call: object): SignalSource | undefined {
    return call instanceof LazySignalCall ? call.#source : undefined;
  }

  /** @internal */
  static copy(call: LazySignalCall, changes: CallChanges): LazySignalCall {
    return new LazySignalCall(call, call.#source, changes);
  }
}

/**
 * A plain copy of a call with every field of {@link Call} (and `instance`) set in one order.
 * V8 (Node 20) takes about 3 µs for `{ ...call, instance }` (a spread plus a new key leaves the
 * fast path), and about 0.01 µs for this.
 */
class CallCopy {
  readonly service: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: unknown;
  readonly avoid: ReadonlySet<string> | undefined;
  readonly instance: ServiceInstance | undefined;
  readonly signal: AbortSignal | undefined;

  constructor(call: CallFields & { readonly signal?: AbortSignal | undefined }, changes: CallChanges) {
    this.service = call.service;
    this.method = call.method;
    this.path = call.path;
    this.headers = changes.headers ?? call.headers;
    this.body = call.body;
    this.avoid = 'avoid' in changes ? changes.avoid : call.avoid;
    this.instance = changes.instance ?? call.instance;
    this.signal = call.signal;
  }
}

/**
 * A copy of `call` with `changes` (the instances to avoid, the chosen instance, the headers). Use it instead
 * of `{ ...call, ... }` in filters: it keeps a timeout's lazily made signal lazy and attached
 * (a spread would drop it), and it is two orders of magnitude cheaper than a spread that adds a
 * key. The copy has the fields of {@link Call} (and `instance`) only.
 *
 * @example
 * const attempt = withCall(call, { instance }); // instead of { ...call, instance }
 * const stamped = withCall(call, { headers: { ...call.headers, 'x-caller': 'forum' } });
 */
export function withCall<C extends Call>(call: C, changes: CallChanges): C {
  if (call instanceof LazySignalCall) return LazySignalCall.copy(call, changes) as unknown as C;
  return new CallCopy(call, changes) as unknown as C;
}

/**
 * An AbortSignal made on first read, that follows a parent signal (aborts with its reason) and
 * can be cancelled with a reason of its own, before or after it is made. The parent is read only
 * when this one is, so a chain of lazy signals stays unmade until something consumes one. Timeouts
 * and hedged attempts are the sources of their calls' signals through one of these.
 */
export class ChildSignal {
  readonly #parentOf: () => AbortSignal | undefined;
  #controller: AbortController | undefined;
  #cancelled: unknown;
  #detached = false;
  #parent: AbortSignal | undefined;
  #onParentAbort: (() => void) | undefined;

  /** @param parentOf reads the parent signal (once, when this one is first read). */
  constructor(parentOf: () => AbortSignal | undefined) {
    this.#parentOf = parentOf;
  }

  /** The signal, made now if it was not yet. */
  get(): AbortSignal {
    if (this.#controller !== undefined) return this.#controller.signal;
    const controller = new AbortController();
    this.#controller = controller;
    if (this.#cancelled !== undefined) {
      controller.abort(this.#cancelled);
      return controller.signal;
    }
    const parent = this.#parentOf();
    if (parent?.aborted === true) {
      controller.abort(parent.reason);
    } else if (parent !== undefined && !this.#detached) {
      this.#parent = parent;
      this.#onParentAbort = () => controller.abort(parent.reason);
      parent.addEventListener('abort', this.#onParentAbort, { once: true });
    }
    return controller.signal;
  }

  /** The work settled: stop following the parent. */
  detach(): void {
    this.#detached = true;
    if (this.#onParentAbort !== undefined) this.#parent?.removeEventListener('abort', this.#onParentAbort);
    this.#onParentAbort = undefined;
    this.#parent = undefined;
  }

  /** Aborts with `reason` now, or as soon as the signal is made; stops following the parent. */
  cancel(reason: unknown): void {
    this.detach();
    this.#cancelled = reason;
    this.#controller?.abort(reason);
  }
}
