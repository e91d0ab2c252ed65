import type { ServiceInstance } from './service-instance.js';

/**
 * The key of a typed attribute of a {@link CallContext}: make one per kind of value, at module
 * level, and share it between the stage that sets the value and those that read it.
 *
 * @example
 * const tenant = new AttributeKey<string>('tenant');
 * context.set(tenant, 'acme');
 * const who = context.get(tenant); // 'acme', typed string | undefined
 */
export class AttributeKey<T> {
  readonly name: string;
  /** Carries `T` for the type checker only. */
  declare readonly valueType?: T;

  constructor(name: string) {
    this.name = name;
  }
}

/** What a caller sets in the context of one call. */
export interface CallContextInit {
  /** Cancels the call when aborted. */
  readonly signal?: AbortSignal;
  /** When the call must be over, as a reading of the client's clock. */
  readonly deadline?: number;
  /** False turns retries off for this call; default true. */
  readonly retry?: boolean;
  /** Says whether this call may run twice, overriding what its method says; default undecided. */
  readonly idempotent?: boolean;
}

const cancellable = Symbol('cancellable');

/**
 * What travels beside a {@link Call} through the stack: the signal that cancels it, its
 * deadline, the attempt number, the chosen instance, the instances to avoid, and typed
 * attributes. Stages read it and extend it (the instance selection stage sets `instance`); a
 * stage that needs a signal of its own (a timeout, a hedged attempt) forks a cancellable child.
 *
 * The signal of a cancellable child is made only when something reads it (the transport does):
 * an AbortController and a listener on the parent cost microseconds, more than a whole call
 * through the stack without them.
 *
 * @example
 * const root = new CallContext({ signal: AbortSignal.timeout(1_000) });
 * const reply = await service(call, root);
 */
export class CallContext {
  /** The context this one was forked from. */
  readonly parent: CallContext | undefined;
  /** When the whole call must be over, as a reading of the client's clock; undefined for no deadline. */
  deadline: number | undefined;
  /** The attempt this context is for, from 1. */
  attempt: number;
  /** The instance chosen for this attempt, once instance selection ran. */
  instance: ServiceInstance | undefined;
  /** Ids of instances this attempt must not go to (ones an earlier attempt found failing). */
  avoid: ReadonlySet<string> | undefined;
  /** False when the caller turned retries off for this call. */
  readonly retry: boolean;
  /** The caller's word on whether the call may run twice; undefined to judge by its method. */
  readonly idempotent: boolean | undefined;
  readonly #given: AbortSignal | undefined;
  readonly #cancellable: boolean;
  #controller: AbortController | undefined;
  #cancelled: unknown;
  #following: AbortSignal | undefined;
  #onParentAbort: (() => void) | undefined;
  #detached: boolean;
  #attributes: Map<AttributeKey<unknown>, unknown> | undefined;

  constructor(init: CallContextInit = {}, parent?: CallContext, mode?: typeof cancellable) {
    this.parent = parent;
    this.deadline = parent === undefined ? init.deadline : parent.deadline;
    this.attempt = parent === undefined ? 1 : parent.attempt;
    this.instance = parent?.instance;
    this.avoid = parent?.avoid;
    this.retry = parent === undefined ? init.retry !== false : parent.retry;
    this.idempotent = parent === undefined ? init.idempotent : parent.idempotent;
    this.#given = parent === undefined ? init.signal : undefined;
    this.#cancellable = mode === cancellable;
    this.#controller = undefined;
    this.#cancelled = undefined;
    this.#following = undefined;
    this.#onParentAbort = undefined;
    this.#detached = false;
    this.#attributes = undefined;
  }

  /**
   * The signal that cancels this call or attempt, or undefined when nothing can cancel it. For
   * a cancellable child it is made on first read, and follows the parent's.
   */
  get signal(): AbortSignal | undefined {
    if (this.#controller !== undefined) return this.#controller.signal;
    if (!this.#cancellable) return this.parent === undefined ? this.#given : this.parent.signal;
    return this.#make();
  }

  /** True once the call is cancelled; reads no signal that is not made yet. */
  get aborted(): boolean {
    if (this.#controller !== undefined) return this.#controller.signal.aborted;
    if (this.#cancelled !== undefined) return true;
    if (this.parent === undefined) return this.#given?.aborted === true;
    return !this.#detached && this.parent.aborted;
  }

  /** The reason this call was cancelled, once {@link aborted}. */
  get reason(): unknown {
    if (this.#controller !== undefined) return this.#controller.signal.reason as unknown;
    if (this.#cancelled !== undefined) return this.#cancelled;
    return this.parent === undefined ? (this.#given?.reason as unknown) : this.parent.reason;
  }

  /** Milliseconds left until the deadline at `now` (the client's clock), or undefined for none. */
  remainingMs(now: number): number | undefined {
    return this.deadline === undefined ? undefined : Math.max(0, this.deadline - now);
  }

  /** A child for one attempt: its own instance, avoid set, attempt and attributes, the parent's signal. */
  fork(): CallContext {
    return new CallContext(undefined, this);
  }

  /**
   * A child with a signal of its own, which follows this one's and can be cancelled alone with
   * {@link cancel}: what a timeout or a hedged attempt hands on.
   */
  forkCancellable(): CallContext {
    return new CallContext(undefined, this, cancellable);
  }

  /** Cancels a cancellable child with `reason`, now or as soon as its signal is made; stops following the parent. */
  cancel(reason: unknown): void {
    if (!this.#cancellable)
      throw new TypeError('CallContext.cancel: only a forkCancellable() context can be cancelled');
    this.detach();
    this.#cancelled = reason;
    this.#controller?.abort(reason);
  }

  /** The work under a cancellable child settled: stop following the parent's signal (frees the listener). */
  detach(): void {
    this.#detached = true;
    if (this.#onParentAbort !== undefined) this.#following?.removeEventListener('abort', this.#onParentAbort);
    this.#onParentAbort = undefined;
    this.#following = undefined;
  }

  /** The attribute under `key`, set here or in a parent; undefined when none is. */
  get<T>(key: AttributeKey<T>): T | undefined {
    const own = this.#attributes;
    if (own !== undefined && own.has(key)) return own.get(key) as T;
    return this.parent?.get(key);
  }

  /** Sets an attribute on this context (children see it; the parent does not). */
  set<T>(key: AttributeKey<T>, value: T): this {
    (this.#attributes ??= new Map()).set(key, value);
    return this;
  }

  #make(): AbortSignal {
    const controller = new AbortController();
    this.#controller = controller;
    if (this.#cancelled !== undefined) {
      controller.abort(this.#cancelled);
      return controller.signal;
    }
    const parent = this.#detached ? undefined : this.parent?.signal;
    if (parent?.aborted === true) {
      controller.abort(parent.reason);
    } else if (parent !== undefined) {
      this.#following = parent;
      this.#onParentAbort = () => controller.abort(parent.reason);
      parent.addEventListener('abort', this.#onParentAbort, { once: true });
    }
    return controller.signal;
  }
}
