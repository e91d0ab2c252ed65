import {
  CallContext,
  ConfigError,
  ManualClock,
  Telemetry,
  type Call,
  type Clock,
  type Filter,
  type Reply,
  type ServiceInstance,
  type Stage,
} from '@trellis/core';

/** The field a ConfigError thrown by `make` names, or undefined when it throws none. */
export function configField(make: () => unknown): string | undefined {
  try {
    make();
  } catch (error) {
    return ConfigError.is(error) ? error.field : undefined;
  }
  return undefined;
}

/** Three instances of "users" that no test connects to (filters are tested without a network). */
export const instances = ['users-1', 'users-2', 'users-3'].map((id): ServiceInstance => ({
  id,
  service: 'users',
  address: '127.0.0.1',
  port: 1,
  tags: [],
  meta: { weight: 1, labels: {} },
}));

/** An idempotent call to "users". */
export const get: Call = { service: 'users', method: 'GET', path: '/users/1', headers: {} };

/** An instance of "users" that no test connects to (breakers are tested without a network). */
export const instance = (id: string): ServiceInstance => ({
  id,
  service: 'users',
  address: '127.0.0.1',
  port: 1,
  tags: [],
  meta: { weight: 1, labels: {} },
});

/**
 * A call with what its context carries spread onto it, the shape these tests were written in:
 * the instance, the signal, the instances to avoid. {@link adapt} turns it into a call and a
 * context for the stage, and back for the downstream.
 */
export interface CallLike extends Call {
  readonly instance?: ServiceInstance;
  readonly signal?: AbortSignal | undefined;
  readonly avoid?: ReadonlySet<string> | undefined;
}

/** Makes a stage's filter with a test environment (a manual clock unless given). */
export function filterOf(stage: Stage, clock: Clock = new ManualClock()): Filter {
  const filter = stage.make({
    service: 'users',
    stage: stage.name,
    clock,
    random: () => 0.5,
    telemetry: new Telemetry(),
    onClose: () => undefined,
  });
  if (filter === undefined) throw new Error(`stage ${stage.name} made no filter`);
  return filter;
}

function contextOf(call: CallLike): CallContext {
  const context = new CallContext(call.signal === undefined ? {} : { signal: call.signal });
  context.instance = call.instance;
  context.avoid = call.avoid;
  return context;
}

function callOf(call: CallLike): Call {
  return {
    service: call.service,
    method: call.method,
    path: call.path,
    headers: call.headers,
    ...(call.body === undefined ? {} : { body: call.body }),
  };
}

/** A stage as a function of a call-like and a downstream of call-likes. */
export function adapt(
  stage: Stage,
  clock?: Clock,
): (call: CallLike, next: (call: CallLike) => Promise<Reply>) => Promise<Reply> {
  const filter = filterOf(stage, clock);
  return (call, next) =>
    filter(callOf(call), contextOf(call), (c, context) =>
      next({ ...c, instance: context.instance as ServiceInstance, signal: context.signal, avoid: context.avoid }),
    );
}

/** Stages composed around a downstream of call-likes, outermost first. */
export function composeStages(
  stages: readonly Stage[],
  service: (call: CallLike) => Promise<Reply>,
  clock?: Clock,
): (call: CallLike) => Promise<Reply> {
  return stages.reduceRight<(call: CallLike) => Promise<Reply>>((next, stage) => {
    const run = adapt(stage, clock);
    return (call) => run(call, next);
  }, service);
}
