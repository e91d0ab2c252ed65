import {
  TrellisError,
  type Call,
  type CallContext,
  type Reply,
  type Service,
  type Stage,
  type StageEnv,
} from '@trellis/core';
import type { CircuitBreaker } from './circuit-breaker.js';
import { adoptClock, type CircuitBreakerRegistry } from './circuit-breaker-registry.js';

/** What a breaker filter counts as a failure of the target. */
export interface CircuitBreakerFilterOptions {
  /** Whether a reply is a failure; default {@link isServerErrorReply} (5xx; 4xx is the caller's mistake, a success). */
  readonly isFailureReply?: (reply: Reply) => boolean;
  /**
   * Whether a thrown error is a failure; one that is not is ignored (neither success nor
   * failure). Default {@link isTargetError}. An error after the call's own signal aborted is
   * always ignored: the caller gave up, the target did nothing wrong.
   */
  readonly isFailureError?: (error: unknown) => boolean;
}

/** The default failure reply: an HTTP status of 500 or more. */
export function isServerErrorReply(reply: Reply): boolean {
  return reply.status >= 500;
}

// Errors raised in this process without asking the target: they say nothing of its health.
const localCodes: ReadonlySet<string> = new Set(['RATE_LIMITED', 'BULKHEAD_FULL', 'INVALID_CONFIG', 'CLOSED']);

/**
 * The default failure error: anything thrown (connection failed, timed out, no instances, an
 * inner breaker open) except Trellis errors raised locally without reaching the target:
 * `RATE_LIMITED`, `BULKHEAD_FULL`, `INVALID_CONFIG`, `CLOSED`.
 */
export function isTargetError(error: unknown): boolean {
  return !(TrellisError.is(error) && localCodes.has(error.code));
}

/**
 * The stage with one breaker per target service, for a client's `filters`: calls to a service
 * whose breaker is open fail at once with a non-retryable {@link CircuitOpenError}.
 *
 * @example
 * const services = new CircuitBreakerRegistry({ minimumCalls: 20 });
 * new ServiceClient({ service: 'users', discovery, filters: [new Fallback({ body: [] }), serviceCircuitBreaker(services)] });
 */
export function serviceCircuitBreaker(
  registry: CircuitBreakerRegistry,
  options: CircuitBreakerFilterOptions = {},
): Stage {
  const isFailureReply = options.isFailureReply ?? isServerErrorReply;
  const isFailureError = options.isFailureError ?? isTargetError;
  return {
    name: 'service-breaker',
    role: 'service-breaker',
    level: 'call',
    make(env) {
      forwardStates(registry, env);
      return (call, context, next) =>
        guard(registry.get(call.service), call, context, next, isFailureReply, isFailureError);
    },
  };
}

/**
 * The stage with one breaker per instance (a ServiceClient has one, named "breaker"): an
 * attempt on an instance whose breaker is open fails at once with a retryable
 * {@link CircuitOpenError} naming the instance, and the registry (as `InstanceHealth`) ejects
 * that instance from load balancing until its probe succeeds.
 *
 * @example
 * const breakers = new CircuitBreakerRegistry({ resetTimeoutMs: 5_000 });
 * new ServiceClient({ service: 'users', discovery, breakers });
 */
export function instanceCircuitBreaker(
  registry: CircuitBreakerRegistry,
  options: CircuitBreakerFilterOptions = {},
): Stage {
  const isFailureReply = options.isFailureReply ?? isServerErrorReply;
  const isFailureError = options.isFailureError ?? isTargetError;
  return {
    name: 'breaker',
    role: 'breaker',
    level: 'attempt',
    make(env) {
      forwardStates(registry, env);
      return (call, context, next) => {
        const instance = context.instance;
        if (instance === undefined) return next(call, context);
        return guard(registry.get(call.service, instance.id), call, context, next, isFailureReply, isFailureError);
      };
    },
  };
}

// A registry may be shared by the clients of a process: each client reports its own service's.
// A registry made without a clock runs on the stack's, as every other stage does.
function forwardStates(registry: CircuitBreakerRegistry, env: StageEnv): void {
  adoptClock(registry, env.clock);
  const subscription = registry.onStateChanged((change) => {
    if (change.service === env.service) env.telemetry.emit(change);
  });
  env.onClose(() => subscription.dispose());
}

// One function for both levels, taking the predicates as arguments so that no closure is made per call.
async function guard(
  breaker: CircuitBreaker,
  call: Call,
  context: CallContext,
  next: Service,
  isFailureReply: (reply: Reply) => boolean,
  isFailureError: (error: unknown) => boolean,
): Promise<Reply> {
  if (!breaker.tryAcquire()) throw breaker.rejection();
  // Read the clock only when slow calls count: a stopwatch nobody reads is wasted work.
  const timed = breaker.measuresDuration;
  const started = timed ? breaker.clock.now() : 0;
  let reply: Reply;
  try {
    reply = await next(call, context);
  } catch (error) {
    if (context.aborted || !judge(breaker, isFailureError, error)) {
      breaker.release();
    } else {
      const ended = timed ? breaker.clock.now() : undefined;
      breaker.onFailure(ended === undefined ? 0 : ended - started, ended);
    }
    throw error;
  }
  const ended = timed ? breaker.clock.now() : undefined;
  if (judge(breaker, isFailureReply, reply)) breaker.onFailure(ended === undefined ? 0 : ended - started, ended);
  else breaker.onSuccess(ended === undefined ? 0 : ended - started, ended);
  return reply;
}

// A user predicate that throws must not keep the permission: a half-open breaker would wait
// for that probe's outcome forever, and its instance stay ejected.
function judge<T>(breaker: CircuitBreaker, predicate: (value: T) => boolean, value: T): boolean {
  try {
    return predicate(value);
  } catch (error) {
    breaker.release();
    throw error;
  }
}
