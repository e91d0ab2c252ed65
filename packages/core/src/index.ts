export { compose } from './call.js';
export type { Call, Filter, Reply, Service } from './call.js';
export { AttributeKey, CallContext } from './call-context.js';
export type { AbortSignalLike, CallContextInit } from './call-context.js';
export type { InstanceHealth } from './instance-health.js';
export type { InstanceSource } from './instance-source.js';
export { ManualClock, sleep, systemClock } from './clock.js';
export type { Clock, Timer } from './clock.js';
export { toDisposable } from './disposable.js';
export type { Closeable, Disposable } from './disposable.js';
export {
  ClosedError,
  ConfigError,
  ConnectionError,
  NoInstancesError,
  RegistryRejectedError,
  RegistryUnavailableError,
  TrellisError,
  UpstreamStatusError,
} from './errors.js';
export type { ErrorCode, SchemaIssue, TrellisErrorOptions } from './errors.js';
export { Emitter } from './event.js';
export type { Event } from './event.js';
export { instanceOrigin } from './service-instance.js';
export { isServiceName } from './service-name.js';
export type { InstanceMeta, ServiceInstance } from './service-instance.js';
export { filterStage, Stack } from './stack.js';
export type { Stage, StageEnv, StageRole } from './stack.js';
export { Telemetry } from './telemetry.js';
export type {
  AttemptEnded,
  AttemptStarted,
  CircuitState,
  CircuitStateChanged,
  ConfigRefused,
  DryRunEvaluated,
  DryRunFaulted,
  DryRunLimited,
  DryRunRouted,
  FallbackAnswered,
  FaultInjected,
  HedgeSent,
  InstancePicked,
  LimitRejected,
  RateLimitDecidedLocally,
  RateLimitFallbackChanged,
  RetryRefused,
  RetryScheduled,
  RulesApplied,
  RulesRefused,
  TelemetryEvent,
  TimedOut,
} from './telemetry.js';
