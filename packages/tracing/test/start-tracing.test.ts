import { trace } from '@opentelemetry/api';
import { ConfigError } from '@trellis/core';
import { startTracing, startTracingFromEnv, type PropagatorName, type TraceExporterChoice } from '@trellis/tracing/sdk';

function thrown(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('nothing was thrown');
}

describe('startTracing', () => {
  it('refuses an unknown exporter or propagator and an empty service, naming the field', () => {
    expect(thrown(() => startTracing({ service: '' })).field).toBe('service');
    expect(thrown(() => startTracing({ service: 'a', exporter: 'jaeger' as TraceExporterChoice })).field).toBe(
      'exporter',
    );
    expect(
      thrown(() =>
        startTracing({ service: 'a', exporter: 'memory', propagators: ['tracecontext', 'xray' as PropagatorName] }),
      ).field,
    ).toBe('propagators[1]');
    // A refused start registered nothing.
    expect(trace.getTracer('t').startSpan('s').isRecording()).toBe(false);
  });

  it('refuses a second start until the first is shut down, and leaves no SDK behind after shutdown', async () => {
    const first = startTracing({ service: 'a', exporter: 'memory' });
    expect(thrown(() => startTracing({ service: 'b', exporter: 'memory' })).field).toBe('startTracing');
    expect(trace.getTracer('t').startSpan('s').isRecording()).toBe(true);
    await first.shutdown();
    await first.shutdown();
    expect(trace.getTracer('t').startSpan('s').isRecording()).toBe(false);
    const second = startTracing({ service: 'b', exporter: 'memory' });
    trace.getTracer('t').startSpan('kept').end();
    expect((await second.spans()).map((s) => [s.name, s.resource.attributes['service.name']])).toEqual([['kept', 'b']]);
    await second.shutdown();
  });

  it('starts from the environment only when it asks for an exporter', async () => {
    expect(startTracingFromEnv('a', {})).toBeUndefined();
    expect(startTracingFromEnv('a', { OTEL_TRACES_EXPORTER: 'none' })).toBeUndefined();
    expect(
      startTracingFromEnv('a', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_SDK_DISABLED: 'true' }),
    ).toBeUndefined();
    const started = startTracingFromEnv('a', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1' });
    expect(started).toBeDefined();
    await started?.shutdown();
  });
});
