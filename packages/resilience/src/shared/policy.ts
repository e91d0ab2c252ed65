import type { Disposable, Event, StageEnv, TelemetryEvent } from '@trellis/core';

/**
 * What every policy offers beyond HTTP: run any async function under it. The function gets the
 * signal to honour (a timeout or a hedge may cancel it); `signal` cancels the whole execution.
 *
 * @example
 * const policy: Policy = new Retry({ service: 'orders-db' });
 * const rows = await policy.execute((s) => db.query('select 1', { signal: s }), signal);
 */
export interface Policy {
  execute<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T>;
}

/** The signal handed to a function when the caller gave none: it never aborts. */
export const neverAborted: AbortSignal = new AbortController().signal;

/** Forwards a policy's own events to the stack's telemetry sink, undone when the stack closes. */
export function forward(env: StageEnv, ...events: Array<Event<TelemetryEvent>>): void {
  const emit = (e: TelemetryEvent): void => env.telemetry.emit(e);
  const subscriptions: Disposable[] = events.map((event) => event(emit));
  env.onClose(() => {
    for (const s of subscriptions) s.dispose();
  });
}
