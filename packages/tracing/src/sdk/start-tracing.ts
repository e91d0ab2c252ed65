import { context, propagation, ProxyTracerProvider, trace, type TextMapPropagator } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK, type NodeSDKConfiguration } from '@opentelemetry/sdk-node';
import {
  ConsoleSpanExporter,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import { ConfigError } from '@trellis/core';

/** Where finished spans go: OTLP over HTTP, the console, memory (tests), nowhere, or an exporter of your own. */
export type TraceExporterChoice = 'otlp' | 'console' | 'memory' | 'none' | SpanExporter;

/** The propagators `startTracing` can set up, by their `OTEL_PROPAGATORS` names. */
export type PropagatorName = 'tracecontext' | 'baggage' | 'b3' | 'b3multi';

const exporterNames: readonly string[] = ['otlp', 'console', 'memory', 'none'];
const propagatorNames: readonly PropagatorName[] = ['tracecontext', 'baggage', 'b3', 'b3multi'];

export interface StartTracingOptions {
  /** The `service.name` of the spans; `OTEL_SERVICE_NAME` wins when set. */
  readonly service: string;
  /**
   * Where spans go. Default `OTEL_TRACES_EXPORTER` (`otlp`, `console`, `zipkin`, `none`), and
   * `otlp` when that is unset, as every OpenTelemetry SDK does. OTLP goes to
   * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` (default
   * http://localhost:4318), as `OTEL_EXPORTER_OTLP_PROTOCOL` says (`http/protobuf` by default,
   * or `http/json`), in batches (`OTEL_BSP_*`).
   */
  readonly exporter?: TraceExporterChoice;
  /**
   * The propagators of the trace context on calls and requests; default `OTEL_PROPAGATORS`,
   * else `['tracecontext', 'baggage']` (W3C). Add `b3` (one header) or `b3multi` (X-B3-*) to
   * talk to Zipkin-era services.
   */
  readonly propagators?: readonly PropagatorName[];
  /** Which traces are kept; default `OTEL_TRACES_SAMPLER`, else parent-based always-on. */
  readonly sampler?: Sampler;
  /** More resource attributes, e.g. `{ 'service.version': '1.4.0' }`; `OTEL_RESOURCE_ATTRIBUTES` is read too. */
  readonly attributes?: Readonly<Record<string, string>>;
}

/** What {@link startTracing} set up. */
export interface TracingHandle {
  /**
   * The finished spans, with `exporter: 'memory'`, in the order they ended; empty otherwise.
   * Flushes first: the SDK exports a span once the resource's detected attributes are in.
   */
  spans(): Promise<ReadableSpan[]>;
  /** Forgets the finished spans kept in memory. */
  reset(): void;
  /** Sends the spans still waiting in a batch. */
  flush(): Promise<void>;
  /** Flushes, stops the SDK and unregisters it, so that tracing costs nothing again. Safe to call twice. */
  shutdown(): Promise<void>;
}

let started: TracingHandle | undefined;

/**
 * Sets up OpenTelemetry's Node SDK (0.2xx line, Node 20 and up) for traces only: the exporter
 * and propagators chosen here or by the standard `OTEL_*` variables, no auto-instrumentation
 * (Trellis's own stages and TrellisApp make the spans; instrumenting http as well would double
 * them), and no OTel metrics or logs (metrics are Prometheus's, logs pino's). Call it once, first
 * thing in the process.
 *
 * @throws ConfigError for an unknown exporter or propagator, an empty service name, an OTLP
 *   protocol other than http/protobuf or http/json with `exporter: 'otlp'`, or a second start
 *   before the first was shut down.
 * @example
 * import { startTracing } from '@trellis/tracing/sdk';
 * const tracing = startTracing({ service: 'forum' }); // OTLP to OTEL_EXPORTER_OTLP_ENDPOINT
 * process.on('SIGTERM', () => void tracing.shutdown());
 */
export function startTracing(options: StartTracingOptions): TracingHandle {
  if (typeof options.service !== 'string' || options.service === '') {
    throw new ConfigError('service', 'must be the name of the service the spans are reported for');
  }
  if (started !== undefined) {
    throw new ConfigError('startTracing', 'tracing is started already in this process; shut that one down first');
  }
  const exporter = options.exporter;
  if (typeof exporter === 'string' && !exporterNames.includes(exporter)) {
    throw new ConfigError(
      'exporter',
      `must be one of ${exporterNames.join(', ')} or a SpanExporter, got "${exporter}"`,
    );
  }
  const memory = exporter === 'memory' ? new InMemorySpanExporter() : undefined;
  const serviceName = process.env['OTEL_SERVICE_NAME']?.trim() || options.service;
  const config: Partial<NodeSDKConfiguration> = {
    serviceName,
    resource: defaultResource().merge(resourceFromAttributes({ ...options.attributes })),
    instrumentations: [],
    // Traces only: without these, the SDK would set up OTLP metrics and logs from the environment.
    metricReaders: [],
    logRecordProcessors: [],
    ...(options.sampler === undefined ? {} : { sampler: options.sampler }),
    ...(options.propagators === undefined ? {} : { textMapPropagator: propagatorOf(options.propagators) }),
    ...exporterConfig(exporter, memory),
  };
  const sdk = new NodeSDK(config);
  sdk.start();
  let stopping: Promise<void> | undefined;
  const handle: TracingHandle = {
    spans: async () => {
      await handle.flush();
      return memory?.getFinishedSpans() ?? [];
    },
    reset: () => memory?.reset(),
    flush: async () => {
      // The SDK keeps its provider to itself; the API's global proxy hands it out.
      const global = trace.getTracerProvider();
      const provider = (global instanceof ProxyTracerProvider ? global.getDelegate() : global) as {
        forceFlush?: () => Promise<void>;
      };
      await provider.forceFlush?.();
    },
    shutdown: () => {
      stopping ??= sdk.shutdown().finally(() => {
        trace.disable();
        propagation.disable();
        context.disable();
        if (started === handle) started = undefined;
      });
      return stopping;
    },
  };
  started = handle;
  return handle;
}

/**
 * Starts tracing when the environment asks for it (`OTEL_TRACES_EXPORTER` other than `none`,
 * or an `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), as a service's
 * main module does; undefined when it does not, so that a service run by hand sends nothing.
 * `env` decides whether; the SDK itself reads its settings from `process.env`.
 *
 * @throws ConfigError as {@link startTracing} does.
 * @example
 * const tracing = startTracingFromEnv('users');
 * app.http.addHook('onClose', async () => tracing?.shutdown());
 */
export function startTracingFromEnv(
  service: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): TracingHandle | undefined {
  const set = (name: string): boolean => (env[name]?.trim() ?? '') !== '';
  const exporters = env['OTEL_TRACES_EXPORTER']?.trim();
  if (env['OTEL_SDK_DISABLED']?.trim() === 'true' || exporters === 'none') return undefined;
  if (
    !set('OTEL_TRACES_EXPORTER') &&
    !set('OTEL_EXPORTER_OTLP_ENDPOINT') &&
    !set('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT')
  ) {
    return undefined;
  }
  return startTracing({ service });
}

function exporterConfig(
  exporter: TraceExporterChoice | undefined,
  memory: InMemorySpanExporter | undefined,
): Partial<NodeSDKConfiguration> {
  if (exporter === undefined) return {}; // the SDK reads OTEL_TRACES_EXPORTER
  if (exporter === 'memory')
    return memory === undefined ? {} : { spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] };
  if (exporter === 'none') return { spanProcessors: [] };
  if (exporter === 'console')
    return { spanProcessors: [new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() })] };
  // A batch processor configured from OTEL_BSP_*, which the SDK makes for a given exporter.
  return { traceExporter: exporter === 'otlp' ? otlpExporter() : exporter };
}

function otlpExporter(): SpanExporter {
  const protocol = (
    process.env['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'] ??
    process.env['OTEL_EXPORTER_OTLP_PROTOCOL'] ??
    'http/protobuf'
  ).trim();
  if (protocol === 'http/json') return new OtlpJsonExporter();
  if (protocol === 'http/protobuf' || protocol === '') return new OtlpProtobufExporter();
  throw new ConfigError(
    'OTEL_EXPORTER_OTLP_PROTOCOL',
    `must be http/protobuf or http/json with exporter "otlp", got "${protocol}"; leave exporter unset for the SDK's own choice`,
  );
}

function propagatorOf(names: readonly PropagatorName[]): TextMapPropagator {
  const propagators = names.map((name, i): TextMapPropagator => {
    switch (name) {
      case 'tracecontext':
        return new W3CTraceContextPropagator();
      case 'baggage':
        return new W3CBaggagePropagator();
      case 'b3':
        return new B3Propagator();
      case 'b3multi':
        return new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER });
      default:
        throw new ConfigError(
          `propagators[${i}]`,
          `must be one of ${propagatorNames.join(', ')}, got "${String(name)}"`,
        );
    }
  });
  return new CompositePropagator({ propagators });
}
