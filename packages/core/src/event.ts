import { toDisposable, type Disposable } from './disposable.js';

/** Subscribes a listener; dispose the result to unsubscribe. */
export type Event<T> = (listener: (value: T) => void) => Disposable;

/**
 * The sending side of an {@link Event}. Components keep the emitter private and expose
 * `emitter.event`, so that observers (metrics, tracing, logs) subscribe without being imported.
 *
 * @example
 * class Watch {
 *   readonly #changed = new Emitter<ServiceInstance[]>();
 *   readonly onChanged = this.#changed.event;
 * }
 */
export class Emitter<T> {
  readonly #listeners = new Set<(value: T) => void>();
  readonly #onListenerError: (error: unknown) => void;

  /**
   * @param onListenerError receives what a listener throws. By default the error is logged
   *   with `console.error` and the other listeners still run: a bug in a log or metrics listener
   *   must never crash the service (the rule of opentelemetry-js).
   */
  constructor(onListenerError: (error: unknown) => void = logListenerError) {
    this.#onListenerError = onListenerError;
  }

  readonly event: Event<T> = (listener) => {
    // Wrap so that subscribing one function twice gives two independent subscriptions.
    const entry = (value: T): void => listener(value);
    this.#listeners.add(entry);
    return toDisposable(() => this.#listeners.delete(entry));
  };

  /** True when someone listens: lets a producer skip building an event nobody reads. */
  get hasListeners(): boolean {
    return this.#listeners.size > 0;
  }

  /** Calls every listener with `value`. A listener that throws does not stop the others. */
  emit(value: T): void {
    for (const listener of this.#listeners) {
      try {
        listener(value);
      } catch (error) {
        this.#onListenerError(error);
      }
    }
  }

  /** Drops every listener. */
  clear(): void {
    this.#listeners.clear();
  }
}

function logListenerError(error: unknown): void {
  console.error('@trellis: an event listener threw; the event went on to the other listeners', error);
}
