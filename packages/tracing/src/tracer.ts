import { ProxyTracerProvider, trace, type Tracer, type TracerProvider } from '@opentelemetry/api';

/** The instrumentation scope Trellis's spans are reported under. */
export const tracerName = '@trellis/tracing';
export const tracerVersion = '0.1.0';

let cachedProvider: TracerProvider | undefined;
let cachedTracer: Tracer | undefined;

/**
 * The tracer of `provider`, else of the global provider. The global one is looked up on every
 * call and its tracer kept while it stays the same object: an SDK shut down and another started
 * (tests do) replaces the global proxy, and a tracer kept forever would feed the old one.
 */
export function tracerOf(provider: TracerProvider | undefined): Tracer {
  const current = provider ?? trace.getTracerProvider();
  if (current !== cachedProvider || cachedTracer === undefined) {
    cachedProvider = current;
    cachedTracer = current.getTracer(tracerName, tracerVersion);
  }
  return cachedTracer;
}

// What the API's global proxy hands out while no SDK registered a provider: its no-op one.
const noProvider = new ProxyTracerProvider().getDelegate();

/**
 * The tracer to start spans on, or undefined when nothing would record them: no provider was
 * given and no SDK registered one. The stages then do nothing at all, not even a no-op span.
 */
export function activeTracer(provider: TracerProvider | undefined): Tracer | undefined {
  if (provider === undefined) {
    const global = trace.getTracerProvider();
    if (global instanceof ProxyTracerProvider && global.getDelegate() === noProvider) return undefined;
  }
  return tracerOf(provider);
}
