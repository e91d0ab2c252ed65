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
const nothing = (): void => {};

/**
 * What undici and axios read of an `AbortSignal`: {@link CallContext.lightSignal} gives one that
 * costs nothing until the call is cancelled.
 */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * What travels beside a {@link Call} through the stack: the signal that cancels it, its
 * deadline, the attempt number, the chosen instance, the instances to avoid, and typed
 * attributes. Stages read it and extend it (the instance selection stage sets `instance`); a
 * stage that needs a signal of its own (a timeout, a hedged attempt) forks a cancellable child.
 *
 * Cancellation travels through the contexts themselves ({@link onCancel}); a real
 * `AbortSignal` is made only when something reads {@link signal}. On Node 20 an AbortSignal
 * costs about 3 µs and a listener on it about 5 µs, more than a whole call through the stack
 * without them, so the transports take {@link lightSignal} instead.
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
  #cancelled: boolean;
  #cancelReason: unknown;
  #listeners: Array<(reason: unknown) => void> | undefined;
  #unfollow: (() => void) | undefined;
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
    this.#cancelled = false;
    this.#cancelReason = undefined;
    this.#listeners = undefined;
    this.#unfollow = undefined;
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
    const controller = new AbortController();
    this.#controller = controller;
    if (this.aborted) controller.abort(this.reason);
    else this.onCancel((reason) => controller.abort(reason));
    return controller.signal;
  }

  /** True once the call is cancelled; makes no signal. */
  get aborted(): boolean {
    if (this.#cancelled) return true;
    if (this.parent === undefined) return this.#given?.aborted === true;
    return !this.#detached && this.parent.aborted;
  }

  /** The reason this call was cancelled, once {@link aborted}. */
  get reason(): unknown {
    if (this.#cancelled) return this.#cancelReason;
    return this.parent === undefined ? (this.#given?.reason as unknown) : this.parent.reason;
  }

  /**
   * Calls `listener` once, with the reason, when this context is cancelled: by its own
   * {@link cancel}, a parent's, or the caller's signal. Check {@link aborted} first: a context
   * cancelled already does not call it.
   * @returns a function that stops listening.
   */
  onCancel(listener: (reason: unknown) => void): () => void {
    if (this.aborted) return nothing;
    if (!this.#cancellable) {
      if (this.parent !== undefined) return this.parent.onCancel(listener);
      const given = this.#given;
      if (given === undefined) return nothing;
      const onAbort = (): void => listener(given.reason);
      given.addEventListener('abort', onAbort, { once: true });
      return () => given.removeEventListener('abort', onAbort);
    }
    const listeners = (this.#listeners ??= []);
    listeners.push(listener);
    if (this.#unfollow === undefined && !this.#detached && this.parent !== undefined) {
      this.#unfollow = this.parent.onCancel((reason) => this.#fire(reason));
    }
    return () => {
      const at = listeners.indexOf(listener);
      if (at >= 0) listeners.splice(at, 1);
    };
  }

  /**
   * An AbortSignal look-alike for this context, which undici and axios accept as their `signal`,
   * or undefined when nothing can cancel the call. It makes no AbortSignal (see the class notes).
   */
  lightSignal(): AbortSignalLike | undefined {
    return this.#cancelledBy() ? new LightSignal(this) : undefined;
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

  /** Cancels a cancellable child with `reason`, and stops following the parent. */
  cancel(reason: unknown): void {
    if (!this.#cancellable)
      throw new TypeError('CallContext.cancel: only a forkCancellable() context can be cancelled');
    if (this.#cancelled) return;
    this.detach();
    this.#fire(reason);
  }

  /** The work under a cancellable child settled: stop following the parent's signal (frees the listener). */
  detach(): void {
    this.#detached = true;
    this.#unfollow?.();
    this.#unfollow = undefined;
  }

  #fire(reason: unknown): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.#cancelReason = reason;
    this.#unfollow?.();
    this.#unfollow = undefined;
    const listeners = this.#listeners;
    this.#listeners = undefined;
    if (listeners !== undefined) for (const listener of listeners) listener(reason);
  }

  /** Whether anything can cancel this context: a cancellable context on the way up, or the caller's signal. */
  #cancelledBy(): boolean {
    if (this.#cancellable || this.#given !== undefined) return true;
    return this.parent !== undefined && this.parent.#cancelledBy();
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
}

/** The look-alike {@link CallContext.lightSignal} hands out: listeners go to the context's own list. */
class LightSignal implements AbortSignalLike {
  readonly #context: CallContext;
  #listening: Array<{ listener: () => void; stop: () => void }> | undefined;

  constructor(context: CallContext) {
    this.#context = context;
    this.#listening = undefined;
  }

  get aborted(): boolean {
    return this.#context.aborted;
  }

  get reason(): unknown {
    return this.#context.reason;
  }

  addEventListener(type: 'abort', listener: () => void): void {
    if (type !== 'abort') return;
    const stop = this.#context.onCancel(() => listener());
    (this.#listening ??= []).push({ listener, stop });
  }

  removeEventListener(type: 'abort', listener: () => void): void {
    const listening = this.#listening;
    if (type !== 'abort' || listening === undefined) return;
    const at = listening.findIndex((entry) => entry.listener === listener);
    if (at < 0) return;
    listening[at]?.stop();
    listening.splice(at, 1);
  }
}
