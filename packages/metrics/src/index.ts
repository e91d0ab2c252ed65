export { LabelCap, methodLabel, otherMethod, overflowValue, statusClass, unknownRoute } from './label-values.js';
export { durationBuckets, TrellisMetrics } from './trellis-metrics.js';
export type { ServedRequest, TelemetrySource, TrellisMetricsOptions } from './trellis-metrics.js';
export type {
  BreakerSource,
  DiscoverySource,
  RegistrationGaugeState,
  RegistrationSource,
  WatchedServiceStatus,
  WatchedSources,
} from './watched-sources.js';
