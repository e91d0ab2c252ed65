import { Emitter, type Event } from './event.js';

/**
 * Where a breaker stands: `closed` lets calls through, `open` refuses them, `half-open` lets
 * probes through, `isolated` refuses them because it is held open by hand.
 */
export type CircuitState = 'closed' | 'open' | 'half-open' | 'isolated';

/** An instance was chosen for an attempt, and why. */
export interface InstancePicked {
  readonly type: 'instance-picked';
  readonly service: string;
  readonly instance: string;
  readonly attempt: number;
  /** The strategy that picked, e.g. "p2c-peak-ewma". */
  readonly strategy: string;
  /** The routing rule whose destination the instance came from, when rules are set. */
  readonly route: string | undefined;
  /** True when every routed instance was ejected and one was used anyway (panic). */
  readonly panic: boolean;
}

/** An attempt left for an instance. */
export interface AttemptStarted {
  readonly type: 'attempt-started';
  readonly service: string;
  readonly instance: string;
  readonly attempt: number;
  /** The HTTP method, upper case. */
  readonly method: string;
  /** The call's route template ("/users/:id"), when the caller gave one; never the raw path. */
  readonly template: string | undefined;
}

/** An attempt ended: answered (any status), failed, or was cancelled. */
export interface AttemptEnded {
  readonly type: 'attempt-ended';
  readonly service: string;
  readonly instance: string;
  readonly attempt: number;
  /** The HTTP method, upper case. */
  readonly method: string;
  /** The call's route template ("/users/:id"), when the caller gave one; never the raw path. */
  readonly template: string | undefined;
  /** `success`: a status below 500; `failure`: 5xx or an error; `cancelled`: the caller or a stage above gave up. */
  readonly outcome: 'success' | 'failure' | 'cancelled';
  /** The HTTP status, when the instance answered. */
  readonly status: number | undefined;
  /** The error's code (`CONNECTION_FAILED`, `TIMEOUT`, ...), when it threw. */
  readonly error: string | undefined;
  readonly durationMs: number;
}

/** A failed attempt will be tried again. */
export interface RetryScheduled {
  readonly type: 'retry-scheduled';
  readonly service: string;
  /** The attempt that failed, from 1. */
  readonly attempt: number;
  /** The instance that failed, when known. */
  readonly instance: string | undefined;
  /** Why: `HTTP 503`, or the error's code (`CONNECTION_FAILED`, `TIMEOUT`, `CIRCUIT_OPEN`, ...). */
  readonly reason: string;
  /** The backoff before the next attempt (0 for an attempt that never reached an instance). */
  readonly delayMs: number;
}

/** A retryable failure was not retried because the retry budget was spent: a sign of a wide outage. */
export interface RetryRefused {
  readonly type: 'retry-refused';
  readonly service: string;
  readonly attempt: number;
  readonly reason: 'budget';
}

/** A hedged (second) attempt was sent because the first was slow. */
export interface HedgeSent {
  readonly type: 'hedge-sent';
  readonly service: string;
  /** The instance of the slow first attempt, when known. */
  readonly firstInstance: string | undefined;
}

/** A time limit ran out. */
export interface TimedOut {
  readonly type: 'timed-out';
  readonly service: string;
  readonly instance: string | undefined;
  /** `attempt`: one attempt's limit; `deadline`: the whole call's. */
  readonly scope: 'attempt' | 'deadline';
  readonly timeoutMs: number;
}

/** A circuit breaker changed state. */
export interface CircuitStateChanged {
  readonly type: 'circuit-state-changed';
  readonly service: string;
  /** The instance id, for a per-instance breaker. */
  readonly instance: string | undefined;
  readonly from: CircuitState;
  readonly to: CircuitState;
  /** Calls in the window when the change happened (before a closing breaker empties it). */
  readonly calls: number;
  /** Share of those calls that failed, from 0 to 1; 0 when there were none. */
  readonly failureRate: number;
}

/** Fault injection delayed or aborted an attempt. */
export interface FaultInjected {
  readonly type: 'fault-injected';
  readonly service: string;
  readonly instance: string;
  readonly kind: 'delay' | 'abort';
  /** The rule's name, or its position "faults[i]". */
  readonly rule: string;
}

/** A rate limit or a concurrency limit (bulkhead) refused a call. */
export interface LimitRejected {
  readonly type: 'limit-rejected';
  readonly service: string;
  readonly limit: 'rate' | 'concurrency';
  /** What was limited: the limiter's name and key. */
  readonly scope: string;
  /** For a rate limit, when the same key can next be served. */
  readonly retryAfterMs: number | undefined;
}

/**
 * A cluster rate limit (one limit shared by every instance, kept in a store such as Redis)
 * moved to this instance's local share of the limit because the store was away or slower than
 * the decision budget (`fallback: true`), or back to the shared limit once the store answered
 * a probe in time (`fallback: false`).
 */
export interface RateLimitFallbackChanged {
  readonly type: 'rate-limit-fallback-changed';
  /** The limit's name. */
  readonly limit: string;
  readonly fallback: boolean;
  /** Why it fell back ("store not ready", "budget of 5 ms passed", the store's error); undefined on the way back. */
  readonly reason: string | undefined;
  /** The local share in force while falling back: the limit divided by the instances known then. */
  readonly share: number;
}

/** A cluster rate limit decided one request from this instance's local share, the store being away or slow. */
export interface RateLimitDecidedLocally {
  readonly type: 'rate-limit-decided-locally';
  /** The limit's name. */
  readonly limit: string;
  readonly granted: boolean;
}

/** A fallback answered in place of the target. */
export interface FallbackAnswered {
  readonly type: 'fallback-answered';
  readonly service: string;
  /** The code of the failure it answered for. */
  readonly cause: string;
}

/**
 * A client took new governance rules (`ServiceClient.applyRules`): its stages run on them from
 * the next call on (calls in flight finish as they started).
 */
export interface RulesApplied {
  readonly type: 'rules-applied';
  readonly service: string;
  /** The rules' version (the rules store's), when given. */
  readonly version: number | undefined;
  /** The fields the rules set, in a fixed order, e.g. ["routing", "retry"]; every other field is back to the client's own options. */
  readonly fields: readonly string[];
}

/**
 * A dry run (`ServiceClient.dryRun`): candidate rules, evaluated beside the live ones on an
 * attempt the live rules sent, would have sent it outside the instances they allow. The
 * attempt itself went as the live rules said.
 */
export interface DryRunRouted {
  readonly type: 'dry-run';
  readonly effect: 'route';
  readonly service: string;
  /** The candidate's version, when given. */
  readonly version: number | undefined;
  readonly attempt: number;
  /** The instance the live rules picked, outside the candidate's destination. */
  readonly instance: string;
  /** The route the live rules took ("default", a route's name or "routes[i]"); undefined when none applied. */
  readonly live: string | undefined;
  /** The route the candidate would take; undefined when none of its routes applies and it has no default. */
  readonly candidate: string | undefined;
}

/**
 * A dry run: the candidate's fault rules would have delayed or aborted an attempt (sampled
 * apart from the live draws, never applied).
 */
export interface DryRunFaulted {
  readonly type: 'dry-run';
  readonly effect: 'fault';
  readonly service: string;
  /** The candidate's version, when given. */
  readonly version: number | undefined;
  readonly attempt: number;
  /** The instance the attempt went to. */
  readonly instance: string;
  readonly kind: 'delay' | 'abort';
  /** The live fault rule matching the attempt (its name or "faults[i]"); undefined when none does. */
  readonly live: string | undefined;
  /** The candidate's rule that would have fired (its name or "faults[i]"). */
  readonly candidate: string;
}

/**
 * A dry run of a service's own `limits`: the candidate limit would have refused a request this
 * service served (429 for the rate, 503 for concurrency). The request itself was served.
 */
export interface DryRunLimited {
  readonly type: 'dry-run';
  readonly effect: 'limit';
  /** The service serving the request (the rules are its own). */
  readonly service: string;
  /** The candidate's version, when given. */
  readonly version: number | undefined;
  readonly limit: 'rate' | 'concurrency';
}

/** What a dry run would have done to one attempt or request: switch on `effect`. */
export type DryRunEvaluated = DryRunRouted | DryRunFaulted | DryRunLimited;

/**
 * A version of a service's rules was refused by this instance (the schema refused it, or a client
 * cannot apply one of its fields); the last good version stays in force.
 */
export interface RulesRefused {
  readonly type: 'rules-refused';
  /** The service the rules are about. */
  readonly service: string;
  /** The refused version, when the document said. */
  readonly version: number | undefined;
  /** The dotted path of the field, e.g. "client.retry.maxAttempts". */
  readonly field: string;
  readonly problem: string;
}

/** A configuration value was refused (failing the schema, or an unknown key); the last good value stays. */
export interface ConfigRefused {
  readonly type: 'config-refused';
  /** The key, e.g. "pageSize". */
  readonly key: string;
  /** Where the value came from, e.g. "kv config/forum/pageSize" or "env FORUM_PAGE_SIZE". */
  readonly source: string;
  readonly problem: string;
}

/** Every decision of a governed call, one union: switch on `type`. */
export type TelemetryEvent =
  | InstancePicked
  | AttemptStarted
  | AttemptEnded
  | RetryScheduled
  | RetryRefused
  | HedgeSent
  | TimedOut
  | CircuitStateChanged
  | FaultInjected
  | LimitRejected
  | RateLimitFallbackChanged
  | RateLimitDecidedLocally
  | FallbackAnswered
  | RulesApplied
  | RulesRefused
  | DryRunEvaluated
  | ConfigRefused;

/**
 * The one sink every stage of a stack reports to, and that metrics, tracing and logs subscribe
 * to. Stages check {@link enabled} before building an event, so that a sink nobody listens to
 * costs a field read. A listener that throws is reported to `onListenerError` (logged by
 * default) and never reaches the call.
 *
 * @example
 * const telemetry = new Telemetry();
 * telemetry.onEvent((e) => { if (e.type === 'retry-scheduled') log.info(e, 'retrying'); });
 * const users = new ServiceClient({ service: 'users', discovery, telemetry });
 */
export class Telemetry {
  readonly #emitter: Emitter<TelemetryEvent>;
  /** Subscribes to every event; dispose the result to unsubscribe. */
  readonly onEvent: Event<TelemetryEvent>;

  /** @param onListenerError receives what a listener throws; default {@link Emitter}'s (logged). */
  constructor(onListenerError?: (error: unknown) => void) {
    this.#emitter = new Emitter<TelemetryEvent>(onListenerError);
    this.onEvent = this.#emitter.event;
  }

  /** True when someone listens. */
  get enabled(): boolean {
    return this.#emitter.hasListeners;
  }

  /** Reports an event to every listener. */
  emit(event: TelemetryEvent): void {
    this.#emitter.emit(event);
  }
}
