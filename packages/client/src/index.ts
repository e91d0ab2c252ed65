export { AxiosTransport } from './axios-transport.js';
export type { AxiosTransportOptions } from './axios-transport.js';
export { createTransport } from './create-transport.js';
export type { TransportName, TransportTarget } from './create-transport.js';
export { failover } from './failover.js';
export {
  FaultInjector,
  type AbortFault,
  type DelayFault,
  type FaultInjected,
  type FaultInjectorOptions,
  type FaultRule,
} from './fault-injection.js';
export { ServiceClient } from './service-client.js';
export type { ServiceClientOptions, ServiceRequest } from './service-client.js';
export type { Transport } from './transport.js';
export { UndiciTransport } from './undici-transport.js';
export type { InstanceChanges, UndiciTransportOptions } from './undici-transport.js';
