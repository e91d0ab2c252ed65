export { addTracing, attemptTrace, attemptTraceStage, callTrace, callTraceStage } from './client-tracing.js';
export type { TracingStageOptions } from './client-tracing.js';
export { traceLogFields } from './log-fields.js';
export type { TraceLogFields } from './log-fields.js';
export { startServerSpan, withServerSpan } from './server-tracing.js';
export type { ServedRequestInfo, ServerSpan, ServerTracingOptions } from './server-tracing.js';
export { tracerName, tracerVersion } from './tracer.js';
