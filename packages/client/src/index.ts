export { AxiosTransport } from './axios-transport.js';
export type { AxiosTransportOptions } from './axios-transport.js';
export { clientRulesSchema, parseClientRules } from './client-rules.js';
export type { BreakerRules, ClientRules, HedgingRules, RetryBudgetRules, RetryRules } from './client-rules.js';
export { createTransport } from './create-transport.js';
export type { TransportName, TransportTarget } from './create-transport.js';
export { failover } from './failover.js';
export type { DryRunStatus } from './dry-run.js';
export { faultRulesSchema, FaultInjector, parseFaultRules } from './fault-injection.js';
export type { AbortFault, DelayFault, FaultInjectorOptions, FaultRule } from './fault-injection.js';
export { inboundScope, timeoutHeader } from './inbound-scope.js';
export type { InboundScope } from './inbound-scope.js';
export { defaultStages, maxDescribedInstances, ServiceClient } from './service-client.js';
export type {
  CallOptions,
  ClientInstanceStatus,
  ClientStatus,
  RetryBudgetStatus,
  ServiceClientOptions,
  ServiceRequest,
} from './service-client.js';
export type { Transport } from './transport.js';
export { UndiciTransport } from './undici-transport.js';
export type { InstanceChanges, UndiciTransportOptions } from './undici-transport.js';
