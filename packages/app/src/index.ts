export { appOptionsFromEnv } from './app-options.js';
export type { AppOptions, LogDestination, LogLevel } from './app-options.js';
export { applyInboundLimits } from './inbound-limit.js';
export type { InboundChoice, InboundLimits } from './inbound-limit.js';
export { AppTokens, clientToken } from './tokens.js';
export { TrellisApp } from './trellis-app.js';
export type { StartedApp } from './trellis-app.js';
export { trellisPath } from './trellis-page/trellis-route.js';
export type {
  AppState,
  RecentCalls,
  TrellisClientStatus,
  TrellisDiscoveryStatus,
  TrellisInstanceStatus,
  TrellisRegistrationStatus,
  TrellisStatus,
  TrellisTargetInstance,
} from './trellis-page/trellis-status.js';
