export { startTracing, startTracingFromEnv } from './start-tracing.js';
export type { PropagatorName, StartTracingOptions, TraceExporterChoice, TracingHandle } from './start-tracing.js';
