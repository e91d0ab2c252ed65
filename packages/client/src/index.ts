export { AxiosTransport } from './axios-transport.js';
export type { AxiosTransportOptions } from './axios-transport.js';
export { failover } from './failover.js';
export {
  FaultInjector,
  type AbortFault,
  type DelayFault,
  type FaultInjected,
  type FaultInjectorOptions,
  type FaultRule,
} from './fault-injection.js';
export { Hedging } from './hedging.js';
export type { HedgeEvent, HedgingOptions } from './hedging.js';
export { withCall } from './lazy-signal-call.js';
export type { CallChanges } from './lazy-signal-call.js';
export { retry } from './retry.js';
export type { RetryEvent, RetryFilter, RetryOptions } from './retry.js';
export { RetryBudget } from './retry-budget.js';
export type { RetryBudgetOptions } from './retry-budget.js';
export { ServiceClient } from './service-client.js';
export type { ServiceClientOptions, ServiceRequest } from './service-client.js';
export { attemptTimeout, deadline } from './timeout.js';
export type { TimeoutFilter, TimeoutOptions } from './timeout.js';
export { TimeoutError } from './timeout-error.js';
export type { TimeoutScope } from './timeout-error.js';
export type { Transport } from './transport.js';
