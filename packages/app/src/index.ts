export { appOptionsFromEnv } from './app-options.js';
export type { AppConfigOptions, AppOptions, LogDestination, LogLevel } from './app-options.js';
export { LiveRules } from './control-plane/live-rules.js';
export type { LiveRulesOptions, RulesState } from './control-plane/live-rules.js';
export { RuleLimits } from './control-plane/rule-limits.js';
export type { LimitDryRunCounts, RuleLimitsOptions, RuleLimitsStatus } from './control-plane/rule-limits.js';
export { loadAppOptions, readAppOptions } from './config/read-app-options.js';
export type { ConfigSources } from './config/read-app-options.js';
export { settingsSchema } from './config/settings-schema.js';
export type { Settings } from './config/settings-schema.js';
export type { Environment } from './config/env-settings.js';
export type { AppInfo, HealthCheck, HealthReport, HealthStatus } from './health-routes.js';
export { applyInboundLimits, rateRefusal, refusedByRate } from './inbound-limit.js';
export type { InboundChoice, InboundLimits } from './inbound-limit.js';
export { AppTokens, clientToken } from './tokens.js';
export { TrellisApp } from './trellis-app.js';
export { HttpError } from './controllers/http-error.js';
export { errorStatus } from './trellis-error-reply.js';
export type { StartedApp } from './trellis-app.js';
export { trellisPath } from './trellis-page/trellis-route.js';
export type {
  AppState,
  RecentCalls,
  TrellisClientStatus,
  TrellisConfigStatus,
  TrellisDiscoveryStatus,
  TrellisInstanceStatus,
  TrellisRegistrationStatus,
  TrellisStatus,
  TrellisTargetInstance,
} from './trellis-page/trellis-status.js';
export { Client, Controller } from './decorators/class-decorators.js';
export {
  Bulkhead,
  CircuitBreaker,
  Delete,
  Fallback,
  Get,
  Patch,
  Post,
  Put,
  RateLimit,
  Retry,
  Timeout,
} from './decorators/method-decorators.js';
export { Body, Header, Headers, Param, Query, Req, Signal } from './decorators/parameter-decorators.js';
export { classMetadata } from './decorators/metadata.js';
export type {
  BulkheadPolicy,
  CircuitBreakerPolicy,
  ClassMetadata,
  FallbackPolicy,
  HttpVerb,
  MethodMetadata,
  ParameterBinding,
  ParameterSource,
  RateLimitPolicy,
  RateLimiterPolicy,
  RetryPolicy,
} from './decorators/metadata.js';
export { createDeclarativeClient, remoteCall } from './declarative-client/declarative-client.js';
export type { ClientForMethod, Constructor } from './declarative-client/declarative-client.js';
