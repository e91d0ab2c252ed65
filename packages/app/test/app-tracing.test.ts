import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { ConfigError } from '@trellis/core';
import { MemoryRegistry } from '@trellis/registry';
import { TrellisApp, type AppOptions, type LogDestination } from '@trellis/app';
import { startTracing, type TracingHandle } from '@trellis/tracing/sdk';

/** The app's log lines, parsed, as pino writes them to its destination. */
class LogLines {
  readonly lines: Array<Record<string, unknown>> = [];
  write(line: string): void {
    this.lines.push(JSON.parse(line) as Record<string, unknown>);
  }
  matching(pattern: RegExp): Array<Record<string, unknown>> {
    return this.lines.filter((l) => typeof l['msg'] === 'string' && pattern.test(l['msg']));
  }
}

const one = (spans: readonly ReadableSpan[], name: string, kind: SpanKind): ReadableSpan => {
  const found = spans.filter((s) => s.name === name && s.kind === kind);
  expect(found).toHaveLength(1);
  return found[0] as ReadableSpan;
};

describe('TrellisApp tracing', () => {
  let registry: MemoryRegistry;
  let tracing: TracingHandle;
  const apps: TrellisApp[] = [];

  function app(options: Partial<AppOptions> & { service: string }): TrellisApp {
    const created = new TrellisApp({
      registry,
      logLevel: 'info',
      logDestination: new LogLines(),
      drainMs: 0,
      ...options,
    });
    apps.push(created);
    return created;
  }

  beforeEach(() => {
    registry = new MemoryRegistry();
    tracing = startTracing({ service: 'test', exporter: 'memory' });
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
    await registry.close();
    await tracing.shutdown();
  });

  it("follows a request across two apps: forum's SERVER span, its call and attempt, users' SERVER span", async () => {
    const forumLogs = new LogLines();
    const users = app({ service: 'users' });
    users.http.get('/users/:id', async (request) => ({ id: (request.params as { id: string }).id }));
    await users.start();
    const forum = app({ service: 'forum', calls: ['users'], logDestination: forumLogs });
    // A POST: its body is parsed between onRequest and the handler, and the context must survive it.
    forum.http.post('/posts/:id', async (request) => {
      const { id } = request.params as { id: string };
      const author = await forum.client('users').get(`/users/${id}`, { template: '/users/:id' });
      request.log.info('post served');
      return { id, author, body: request.body };
    });
    const { url } = await forum.start();

    const response = await fetch(`${url}/posts/7`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'hello' }),
    });
    expect(response.status).toBe(200);

    const spans = await tracing.spans();
    const forumServer = one(spans, 'POST /posts/:id', SpanKind.SERVER);
    const usersServer = one(spans, 'GET /users/:id', SpanKind.SERVER);
    const clientSpans = spans.filter((s) => s.name === 'GET /users/:id' && s.kind === SpanKind.CLIENT);
    const call = clientSpans.find((s) => s.attributes['trellis.attempt.kind'] === undefined);
    const attempt = clientSpans.find((s) => s.attributes['trellis.attempt.kind'] === 'first');
    const traceId = forumServer.spanContext().traceId;
    for (const span of [usersServer, call, attempt]) expect(span?.spanContext().traceId).toBe(traceId);
    expect(forumServer.parentSpanContext).toBeUndefined();
    expect(call?.parentSpanContext?.spanId).toBe(forumServer.spanContext().spanId);
    expect(attempt?.parentSpanContext?.spanId).toBe(call?.spanContext().spanId);
    expect(usersServer.parentSpanContext?.spanId).toBe(attempt?.spanContext().spanId);
    expect(forumServer.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/posts/:id',
      'url.path': '/posts/7',
      'url.scheme': 'http',
      'http.response.status_code': 200,
    });
    expect(usersServer.attributes['server.port']).toBe(users.instance?.port);

    // The handler's log line carries the forum SERVER span's ids.
    const [served] = forumLogs.matching(/^post served$/);
    expect(served).toMatchObject({ trace_id: traceId, span_id: forumServer.spanContext().spanId });
  });

  it("joins the caller's trace, and marks a 500 as the server's error", async () => {
    const users = app({ service: 'users' });
    users.http.get('/broken', async () => {
      throw new Error('the database is gone');
    });
    const { url } = await users.start();

    const response = await fetch(`${url}/broken`, {
      headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
    });
    expect(response.status).toBe(500);

    const span = one(await tracing.spans(), 'GET /broken', SpanKind.SERVER);
    expect(span.spanContext().traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(span.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    expect(span.attributes).toMatchObject({ 'http.response.status_code': 500, 'error.type': 'Error' });
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.events.map((e) => e.name)).toEqual(['exception']);
  });

  it('traces the requests a hook refuses, and leaves /health and /metrics out', async () => {
    const users = app({ service: 'users' });
    const { url } = await users.start();
    for (const path of ['/health', '/health/live', '/health/ready', '/info']) {
      expect([path, (await fetch(`${url}${path}`)).status]).toEqual([path, 200]);
    }
    expect((await fetch(`${url}/metrics`)).status).toBe(200);
    expect((await fetch(`${url}/nowhere`, { headers: { 'x-trellis-timeout-ms': 'soon' } })).status).toBe(400);

    const spans = await tracing.spans();
    expect(spans.map((s) => [s.name, s.attributes['http.response.status_code']])).toEqual([['GET', 400]]);
  });

  it('logs a breaker change once, inside the call that caused it, not once per call refused', async () => {
    const forumLogs = new LogLines();
    const users = app({ service: 'users' });
    users.http.get('/broken', async (_request, reply) => reply.code(500).send({ error: 'broken' }));
    await users.start();
    const forum = app({
      service: 'forum',
      calls: ['users'],
      logDestination: forumLogs,
      breaker: { minimumCalls: 5, failureRateThreshold: 0.5, resetTimeoutMs: 60_000 },
      client: { retry: false },
    });
    await forum.start();
    const client = forum.client('users');

    for (let i = 0; i < 100; i++) await client.request({ path: '/broken' }).catch(() => undefined);

    const breakerLines = forumLogs.matching(/breaker/);
    expect(breakerLines).toHaveLength(1);
    expect(breakerLines[0]).toMatchObject({ level: 40, to: 'open', service: 'users', instance: users.instance?.id });
    // Written while the attempt that opened it was the active span.
    const spans = await tracing.spans();
    const opener = spans.find((s) => s.spanContext().spanId === breakerLines[0]?.['span_id']);
    expect(opener?.attributes['trellis.attempt.kind']).toBe('first');
    expect(opener?.spanContext().traceId).toBe(breakerLines[0]?.['trace_id']);
  });

  it('refuses a log destination without write(), naming the option', () => {
    for (const given of [{}, 'stdout', null]) {
      let thrown: unknown;
      try {
        new TrellisApp({ service: 'users', logDestination: given as unknown as LogDestination });
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(ConfigError);
      expect((thrown as ConfigError).field).toBe('logDestination');
    }
  });
});
