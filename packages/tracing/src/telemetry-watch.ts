import type { CircuitState, Disposable, InstancePicked, StageEnv, Telemetry, TelemetryEvent } from '@trellis/core';
import { context as otelContext, trace, type Attributes } from '@opentelemetry/api';
import { TRELLIS_FAULT, TRELLIS_FAULT_RULE } from './attributes.js';

/** Breakers remembered per telemetry sink; past it, the oldest is forgotten (reported as closed). */
const maxBreakers = 10_000;

/**
 * What the tracing stages learn from a stack's telemetry sink: the last pick (strategy, route,
 * panic), the breaker states, and the decisions made while an attempt or call span is active,
 * added to it. One listener per sink, however many stacks share it (a TrellisApp's clients do),
 * so that an event is added once; subscribed only once a call is traced, so that a process
 * without an SDK does not make the stages build events.
 */
export class TelemetryWatch {
  readonly #telemetry: Telemetry;
  #users = 0;
  #subscription: Disposable | undefined;
  #pick: InstancePicked | undefined;
  readonly #breakers = new Map<string, CircuitState>();

  private constructor(telemetry: Telemetry) {
    this.#telemetry = telemetry;
  }

  static readonly #watches = new WeakMap<Telemetry, TelemetryWatch>();

  /** The watch of `env.telemetry`, counted as used until the stack closes. */
  static of(env: StageEnv): TelemetryWatch {
    let watch = TelemetryWatch.#watches.get(env.telemetry);
    if (watch === undefined) {
      watch = new TelemetryWatch(env.telemetry);
      TelemetryWatch.#watches.set(env.telemetry, watch);
    }
    watch.#users++;
    const used = watch;
    env.onClose(() => used.#release());
    return watch;
  }

  /** Starts listening, once; called by a call that is traced. */
  listen(): void {
    if (this.#subscription !== undefined || this.#users === 0) return;
    this.#subscription = this.#telemetry.onEvent((event) => this.#on(event));
  }

  /**
   * The pick the select stage reported just before this attempt, if it is this one's: the
   * attempt stage runs right after select, in the same turn, so the last pick is its own.
   */
  takePick(service: string, instance: string, attempt: number): InstancePicked | undefined {
    const pick = this.#pick;
    this.#pick = undefined;
    return pick !== undefined && pick.instance === instance && pick.attempt === attempt && pick.service === service
      ? pick
      : undefined;
  }

  /** The instance's breaker state as last reported; closed when none was. */
  breakerState(service: string, instance: string): CircuitState {
    // Every breaker closed, the common case: no key to build.
    if (this.#breakers.size === 0) return 'closed';
    return this.#breakers.get(`${service} ${instance}`) ?? 'closed';
  }

  #release(): void {
    if (--this.#users > 0) return;
    this.#subscription?.dispose();
    this.#subscription = undefined;
    this.#pick = undefined;
  }

  #on(event: TelemetryEvent): void {
    switch (event.type) {
      case 'instance-picked':
        this.#pick = event;
        return;
      case 'attempt-started':
      case 'attempt-ended':
      case 'hedge-sent':
        // Attempts are spans of their own; a hedge is sent from a timer, whose context is not the call's.
        return;
      case 'circuit-state-changed': {
        if (event.instance === undefined) return;
        const key = `${event.service} ${event.instance}`;
        this.#breakers.delete(key);
        if (event.to !== 'closed') {
          if (this.#breakers.size >= maxBreakers) this.#breakers.delete(this.#breakers.keys().next().value as string);
          this.#breakers.set(key, event.to);
        }
        // Its timers run in the context of the call that armed them: no span of its own to add to.
        return;
      }
      case 'fault-injected': {
        const span = trace.getSpan(otelContext.active());
        if (span === undefined || !span.isRecording()) return;
        span.setAttribute(TRELLIS_FAULT, event.kind);
        span.setAttribute(TRELLIS_FAULT_RULE, event.rule);
        return;
      }
      default:
        this.#addEvent(event);
    }
  }

  // Retries, refusals, timeouts, limits and fallbacks happen inside the call (or attempt) whose
  // span is active: they become events of it, with the event's own fields as attributes.
  #addEvent(event: TelemetryEvent): void {
    const span = trace.getSpan(otelContext.active());
    if (span === undefined || !span.isRecording()) return;
    const attributes: Attributes = {};
    for (const [key, value] of Object.entries(event)) {
      if (key === 'type' || value === undefined) continue;
      if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
        attributes[`trellis.${snake(key)}`] = value;
      }
    }
    span.addEvent(event.type, attributes);
  }
}

function snake(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
