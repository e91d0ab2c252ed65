export { compose } from './call.js';
export type { Attempt, Call, Reply, Service, Filter } from './call.js';
export type { InstanceHealth } from './instance-health.js';
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
export type { ErrorCode, TrellisErrorOptions } from './errors.js';
export { Emitter } from './event.js';
export type { Event } from './event.js';
export { instanceOrigin } from './service-instance.js';
export type { InstanceMeta, ServiceInstance } from './service-instance.js';
