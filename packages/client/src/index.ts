export { AxiosTransport } from './axios-transport.js';
export type { AxiosTransportOptions } from './axios-transport.js';
export { failover } from './failover.js';
export { ServiceClient } from './service-client.js';
export type { ServiceClientOptions, ServiceRequest } from './service-client.js';
export type { Transport } from './transport.js';
