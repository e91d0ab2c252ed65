import { context as otelContext, isSpanContextValid, trace } from '@opentelemetry/api';

/** The fields {@link traceLogFields} adds to a log line: OTel's names for logs (as its pino instrumentation writes them). */
export interface TraceLogFields {
  readonly trace_id?: string;
  readonly span_id?: string;
  /** "01" when the trace is sampled. */
  readonly trace_flags?: string;
}

/**
 * The active span's `trace_id`, `span_id` and `trace_flags`, for a log line; no fields outside
 * any span (or with no SDK set up). Made for pino's `mixin` option, which calls it per line
 * and merges the line's own fields into what it returns: so a new object every time.
 *
 * @example
 * // import pino from 'pino'; const log = pino({ mixin: traceLogFields });
 * const fields = traceLogFields(); // { trace_id: '4bf9...', span_id: '00f0...', trace_flags: '01' } in a span, {} outside
 */
export function traceLogFields(): TraceLogFields {
  const span = trace.getSpan(otelContext.active());
  if (span === undefined) return {};
  const spanContext = span.spanContext();
  if (!isSpanContextValid(spanContext)) return {};
  return {
    trace_id: spanContext.traceId,
    span_id: spanContext.spanId,
    trace_flags: spanContext.traceFlags.toString(16).padStart(2, '0'),
  };
}
