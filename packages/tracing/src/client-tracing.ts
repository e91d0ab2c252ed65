import {
  context as otelContext,
  isSpanContextValid,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TracerProvider,
} from '@opentelemetry/api';
import {
  AttributeKey,
  instanceOrigin,
  type Call,
  type Filter,
  type Reply,
  type Stack,
  type Stage,
  type StageEnv,
} from '@trellis/core';
import {
  ERROR_TYPE,
  errorType,
  HTTP_REQUEST_METHOD,
  HTTP_REQUEST_METHOD_ORIGINAL,
  HTTP_REQUEST_RESEND_COUNT,
  HTTP_RESPONSE_STATUS_CODE,
  httpSpanName,
  semconvMethod,
  SERVER_ADDRESS,
  SERVER_PORT,
  TRELLIS_ATTEMPT,
  TRELLIS_ATTEMPT_KIND,
  TRELLIS_ATTEMPTS,
  TRELLIS_BREAKER_STATE,
  TRELLIS_INSTANCE_ID,
  TRELLIS_PANIC,
  TRELLIS_ROUTE,
  TRELLIS_SERVICE,
  TRELLIS_STRATEGY,
  URL_FULL,
  URL_TEMPLATE,
} from './attributes.js';
import { TelemetryWatch } from './telemetry-watch.js';
import { activeTracer, tracerOf } from './tracer.js';

export interface TracingStageOptions {
  /** The provider spans are started on; default the global one (what `startTracing` registers). */
  readonly tracerProvider?: TracerProvider;
}

/** What the call stage hands the attempt stage through the context: the call's span and how many attempts it had. */
interface TracedCall {
  /** The OTel context the attempts are children of: the call's span in the caller's context. */
  readonly context: Context;
  readonly span: Span;
  readonly recording: boolean;
  /** Attempt spans started so far. */
  attempts: number;
  /** The highest attempt number seen; an attempt that does not raise it is a hedge. */
  lastAttempt: number;
}

const tracedCall = new AttributeKey<TracedCall>('trellis.tracing.call');

/** The name of the call-level tracing stage. */
export const callTraceStage = 'trace';
/** The name of the attempt-level tracing stage. */
export const attemptTraceStage = 'trace-attempt';

/**
 * The call-level tracing stage: a CLIENT span per governed call (retries, hedges and waits
 * included), named by OTel's HTTP conventions (`GET /users/:id` with a template, else `GET`),
 * made the active context while the call runs. With no SDK set up it goes straight on: no
 * span, not even a no-op one, is made.
 *
 * @example
 * const users = new ServiceClient({ service: 'users', discovery, stack: (s) => s.prepend(callTrace()) });
 */
export function callTrace(options: TracingStageOptions = {}): Stage {
  return {
    name: callTraceStage,
    level: 'call',
    make(env: StageEnv): Filter {
      const watch = TelemetryWatch.of(env);
      const provider = options.tracerProvider;
      return (call, context, next) => {
        const tracer = activeTracer(provider);
        if (tracer === undefined) return next(call, context);
        const parent = otelContext.active();
        // Every attribute known at the start goes in with it: the SDK checks them in one pass.
        const span = tracer.startSpan(
          httpSpanName(call.method, call.template),
          { kind: SpanKind.CLIENT, attributes: callAttributes(call, env.service) },
          parent,
        );
        if (!span.isRecording()) {
          // Not sampled: still carry the trace on, so that the callee's spans join it.
          if (isSpanContextValid(span.spanContext())) {
            context.set(tracedCall, {
              context: trace.setSpan(parent, span),
              span,
              recording: false,
              attempts: 0,
              lastAttempt: 0,
            });
          }
          return next(call, context);
        }
        watch.listen();
        const traced: TracedCall = {
          context: trace.setSpan(parent, span),
          span,
          recording: true,
          attempts: 0,
          lastAttempt: 0,
        };
        context.set(tracedCall, traced);
        return otelContext.with(traced.context, next, undefined, call, context).then(
          (reply) => {
            endWithReply(span, reply, traced.attempts);
            return reply;
          },
          (error: unknown) => {
            endWithError(span, error, traced.attempts);
            throw error;
          },
        );
      };
    },
  };
}

/**
 * The attempt-level tracing stage, right after `select`: a child CLIENT span per attempt (each
 * retry and hedge its own) with the instance, strategy, route, breaker state and fault, and the
 * W3C `traceparent` and `baggage` headers (or whatever propagators are set up) injected into
 * the attempt's request. It traces the calls the {@link callTrace} stage traces, and nothing
 * without it.
 *
 * @example
 * const users = new ServiceClient({ service: 'users', discovery, stack: (s) => s.insertAfter('select', attemptTrace()) });
 */
export function attemptTrace(options: TracingStageOptions = {}): Stage {
  return {
    name: attemptTraceStage,
    level: 'attempt',
    make(env: StageEnv): Filter {
      const watch = TelemetryWatch.of(env);
      const provider = options.tracerProvider;
      return (call, context, next) => {
        const traced = context.get(tracedCall);
        const instance = context.instance;
        if (traced === undefined || instance === undefined) return next(call, context);
        // Read first, in the turn select reported it.
        const pick = watch.takePick(call.service, instance.id, context.attempt);
        const attempt = context.attempt;
        const kind = attempt > traced.lastAttempt ? (attempt > 1 ? 'retry' : 'first') : 'hedge';
        if (attempt > traced.lastAttempt) traced.lastAttempt = attempt;
        const resends = traced.attempts++;
        if (!traced.recording) return next(withTraceHeaders(call, traced.context), context);

        const method = semconvMethod(call.method);
        const attributes: Attributes = {
          [HTTP_REQUEST_METHOD]: method,
          [SERVER_ADDRESS]: instance.address,
          [SERVER_PORT]: instance.port,
          [URL_FULL]: instanceOrigin(instance) + call.path,
          [TRELLIS_SERVICE]: env.service,
          [TRELLIS_INSTANCE_ID]: instance.id,
          [TRELLIS_ATTEMPT]: attempt,
          [TRELLIS_ATTEMPT_KIND]: kind,
          [TRELLIS_BREAKER_STATE]: watch.breakerState(call.service, instance.id),
        };
        if (method === '_OTHER') attributes[HTTP_REQUEST_METHOD_ORIGINAL] = call.method;
        if (call.template !== undefined) attributes[URL_TEMPLATE] = call.template;
        if (resends > 0) attributes[HTTP_REQUEST_RESEND_COUNT] = resends;
        if (pick !== undefined) {
          attributes[TRELLIS_STRATEGY] = pick.strategy;
          if (pick.route !== undefined) attributes[TRELLIS_ROUTE] = pick.route;
          if (pick.panic) attributes[TRELLIS_PANIC] = true;
        }
        const span = tracerOf(provider).startSpan(
          httpSpanName(call.method, call.template),
          { kind: SpanKind.CLIENT, attributes },
          traced.context,
        );
        const active = trace.setSpan(traced.context, span);
        return otelContext.with(active, next, undefined, withTraceHeaders(call, active), context).then(
          (reply) => {
            endWithReply(span, reply);
            return reply;
          },
          (error: unknown) => {
            endWithError(span, error);
            throw error;
          },
        );
      };
    },
  };
}

/**
 * Adds both tracing stages to a stack: {@link callTrace} outermost and {@link attemptTrace}
 * right after `select`. Returns the stack, so it fits a ServiceClient's `stack` option as is.
 *
 * @throws ConfigError when the stack has no `select` stage or has tracing stages already.
 * @example
 * const users = new ServiceClient({ service: 'users', discovery, stack: addTracing });
 */
export function addTracing(stack: Stack, options: TracingStageOptions = {}): Stack {
  return stack.prepend(callTrace(options)).insertAfter('select', attemptTrace(options));
}

/** The call with the propagators' headers (`traceparent`, `baggage`, ...) of `context` added. */
function withTraceHeaders(call: Call, context: Context): Call {
  const headers: Record<string, string> = { ...call.headers };
  propagation.inject(context, headers);
  return { ...call, headers };
}

function callAttributes(call: Call, service: string): Attributes {
  const method = semconvMethod(call.method);
  const attributes: Attributes = { [HTTP_REQUEST_METHOD]: method, [TRELLIS_SERVICE]: service };
  if (method === '_OTHER') attributes[HTTP_REQUEST_METHOD_ORIGINAL] = call.method;
  if (call.template !== undefined) attributes[URL_TEMPLATE] = call.template;
  return attributes;
}

// A client span is an error from 400 up (semconv): the caller did not get what it asked for.
// `attempts` is set on a call's span, left out (undefined) on an attempt's.
function endWithReply(span: Span, reply: Reply, attempts?: number): void {
  const failed = reply.status >= 400;
  span.setAttributes({
    [HTTP_RESPONSE_STATUS_CODE]: reply.status,
    [ERROR_TYPE]: failed ? String(reply.status) : undefined,
    [TRELLIS_ATTEMPTS]: attempts,
  });
  if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

function endWithError(span: Span, error: unknown, attempts?: number): void {
  const type = errorType(error);
  span.setAttributes({ [ERROR_TYPE]: type, [TRELLIS_ATTEMPTS]: attempts });
  if (error instanceof Error) span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : type });
  span.end();
}
