import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { context as otelContext, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { Telemetry, type InstanceSource, type ServiceInstance } from '@trellis/core';
import { ServiceClient } from '@trellis/client';
import { addTracing, startServerSpan } from '@trellis/tracing';
import { startTracing, type TracingHandle } from '@trellis/tracing/sdk';

interface Served {
  readonly instance: ServiceInstance;
  readonly headers: http.IncomingHttpHeaders[];
  /** Answers held back until the test lets them go (for hedging). */
  release(): void;
  close(): Promise<void>;
}

async function serve(id: string, status = 200, hold = false): Promise<Served> {
  const headers: http.IncomingHttpHeaders[] = [];
  const held: Array<() => void> = [];
  let released = !hold;
  const server = http.createServer((req, res) => {
    headers.push(req.headers);
    const answer = (): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ servedBy: id }));
    };
    if (released) answer();
    else held.push(answer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    instance: { id, service: 'users', address: '127.0.0.1', port, tags: [], meta: { weight: 1, labels: {} } },
    headers,
    release: () => {
      released = true;
      for (const answer of held.splice(0)) answer();
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function source(...instances: ServiceInstance[]): InstanceSource {
  return { instances: async () => instances };
}

/** traceparent is version-traceid-parentid-flags. */
function parentOf(header: string | string[] | undefined): { traceId: string; spanId: string } {
  const [, traceId, spanId] = String(header).split('-');
  return { traceId: traceId ?? '', spanId: spanId ?? '' };
}

const byStart = (a: ReadableSpan, b: ReadableSpan): number =>
  a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1];

describe('client tracing stages', () => {
  let tracing: TracingHandle | undefined;
  const closers: Array<() => Promise<void>> = [];

  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    await tracing?.shutdown();
    tracing = undefined;
  });

  async function started(...servers: Served[]): Promise<void> {
    for (const s of servers) closers.push(() => s.close());
  }

  it('makes a CLIENT span per call and a child per attempt, and sends the attempt as the parent', async () => {
    tracing = startTracing({ service: 'forum', exporter: 'memory' });
    const users = await serve('users-1');
    await started(users);
    const client = new ServiceClient({ service: 'users', discovery: source(users.instance), stack: addTracing });
    closers.push(() => client.close());

    const bag = propagation.setBaggage(otelContext.active(), propagation.createBaggage({ tenant: { value: 'acme' } }));
    await otelContext.with(bag, () => client.get('/users/42', { template: '/users/:id' }));

    const [attempt, call] = await tracing.spans();
    expect(call?.name).toBe('GET /users/:id');
    expect(call?.kind).toBe(SpanKind.CLIENT);
    expect(call?.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.template': '/users/:id',
      'http.response.status_code': 200,
      'trellis.service': 'users',
      'trellis.attempts': 1,
    });
    expect(attempt?.name).toBe('GET /users/:id');
    expect(attempt?.kind).toBe(SpanKind.CLIENT);
    expect(attempt?.parentSpanContext?.spanId).toBe(call?.spanContext().spanId);
    expect(attempt?.attributes).toEqual({
      'http.request.method': 'GET',
      'server.address': '127.0.0.1',
      'server.port': users.instance.port,
      'url.full': `http://127.0.0.1:${users.instance.port}/users/42`,
      'url.template': '/users/:id',
      'http.response.status_code': 200,
      'trellis.service': 'users',
      'trellis.instance.id': 'users-1',
      'trellis.attempt': 1,
      'trellis.attempt.kind': 'first',
      'trellis.breaker.state': 'closed',
      'trellis.lb.strategy': 'p2c-peak-ewma',
    });
    const sent = parentOf(users.headers[0]?.traceparent);
    expect(sent).toEqual({ traceId: attempt?.spanContext().traceId, spanId: attempt?.spanContext().spanId });
    expect(users.headers[0]?.baggage).toBe('tenant=acme');
  });

  it('gives each retry its own span, with the failed one marked and the retry in the call span', async () => {
    tracing = startTracing({ service: 'forum', exporter: 'memory' });
    const failing = await serve('users-1', 503);
    const healthy = await serve('users-2', 200);
    await started(failing, healthy);
    const client = new ServiceClient({
      service: 'users',
      discovery: source(failing.instance, healthy.instance),
      strategy: 'round-robin',
      retry: { maxAttempts: 2, backoffBaseMs: 1 },
      stack: addTracing,
    });
    closers.push(() => client.close());

    await client.get('/users/1');

    const spans = await tracing.spans();
    const call = spans.find((s) => s.attributes['trellis.attempt.kind'] === undefined);
    const attempts = spans.filter((s) => s !== call).sort(byStart);
    expect(call?.name).toBe('GET');
    expect(call?.attributes['trellis.attempts']).toBe(2);
    expect(call?.events.map((e) => e.name)).toEqual(['retry-scheduled']);
    expect(call?.events[0]?.attributes).toMatchObject({ 'trellis.reason': 'HTTP 503', 'trellis.attempt': 1 });
    expect(attempts.map((a) => a.attributes['trellis.instance.id'])).toEqual(['users-1', 'users-2']);
    expect(attempts.map((a) => a.attributes['trellis.attempt.kind'])).toEqual(['first', 'retry']);
    expect(attempts.map((a) => a.attributes['http.request.resend_count'])).toEqual([undefined, 1]);
    expect(attempts[0]?.attributes['error.type']).toBe('503');
    expect(attempts[0]?.status.code).toBe(SpanStatusCode.ERROR);
    expect(attempts[1]?.status.code).toBe(SpanStatusCode.UNSET);
    // Each attempt went out as its own parent.
    expect(parentOf(failing.headers[0]?.traceparent).spanId).toBe(attempts[0]?.spanContext().spanId);
    expect(parentOf(healthy.headers[0]?.traceparent).spanId).toBe(attempts[1]?.spanContext().spanId);
  });

  it('marks a hedged attempt as a hedge', async () => {
    tracing = startTracing({ service: 'forum', exporter: 'memory' });
    const slow = await serve('users-1', 200, true);
    const fast = await serve('users-2', 200);
    await started(slow, fast);
    const client = new ServiceClient({
      service: 'users',
      discovery: source(slow.instance, fast.instance),
      strategy: 'round-robin',
      hedging: { delayMs: 20 },
      stack: addTracing,
    });
    closers.push(() => client.close());

    await client.get('/users/1');
    slow.release();

    const attempts = (await tracing.spans())
      .filter((s) => s.attributes['trellis.attempt.kind'] !== undefined)
      .sort(byStart);
    expect(attempts.map((a) => [a.attributes['trellis.instance.id'], a.attributes['trellis.attempt.kind']])).toEqual([
      ['users-1', 'first'],
      ['users-2', 'hedge'],
    ]);
    expect(attempts[1]?.attributes['http.request.resend_count']).toBe(1);
  });

  it('records an injected fault and an error on the attempt and the call', async () => {
    tracing = startTracing({ service: 'forum', exporter: 'memory' });
    const users = await serve('users-1');
    await started(users);
    const client = new ServiceClient({
      service: 'users',
      discovery: source(users.instance),
      retry: false,
      faults: [{ name: 'chaos', abort: { share: 1, status: 503 } }],
      stack: addTracing,
    });
    closers.push(() => client.close());

    await expect(client.get('/users/1')).rejects.toMatchObject({ code: 'UPSTREAM_STATUS' });

    const [attempt, call] = await tracing.spans();
    expect(attempt?.attributes).toMatchObject({
      'trellis.fault': 'abort',
      'trellis.fault.rule': 'chaos',
      'http.response.status_code': 503,
      'error.type': '503',
    });
    expect(call?.attributes['error.type']).toBe('503');
    expect(call?.status.code).toBe(SpanStatusCode.ERROR);
    expect(users.headers).toHaveLength(0);
  });

  it('propagates B3 when asked', async () => {
    tracing = startTracing({ service: 'forum', exporter: 'memory', propagators: ['b3multi'] });
    const users = await serve('users-1');
    await started(users);
    const client = new ServiceClient({ service: 'users', discovery: source(users.instance), stack: addTracing });
    closers.push(() => client.close());

    await client.get('/users/1');

    const [attempt] = await tracing.spans();
    expect(users.headers[0]?.['x-b3-traceid']).toBe(attempt?.spanContext().traceId);
    expect(users.headers[0]?.['x-b3-spanid']).toBe(attempt?.spanContext().spanId);
    expect(users.headers[0]?.traceparent).toBeUndefined();
  });

  it('without an SDK sends no header and leaves the telemetry sink unwatched', async () => {
    const users = await serve('users-1');
    await started(users);
    const telemetry = new Telemetry();
    const client = new ServiceClient({
      service: 'users',
      discovery: source(users.instance),
      telemetry,
      stack: addTracing,
    });
    closers.push(() => client.close());

    await client.get('/users/1');

    expect(users.headers[0]?.traceparent).toBeUndefined();
    // Nobody subscribed, so the stages build no events for tracing.
    expect(telemetry.enabled).toBe(false);
    expect(trace.getActiveSpan()).toBeUndefined();
  });

  it('stops listening to the sink once the traced clients are closed', async () => {
    tracing = startTracing({ service: 'forum', exporter: 'memory' });
    const users = await serve('users-1');
    await started(users);
    const telemetry = new Telemetry();
    const client = new ServiceClient({
      service: 'users',
      discovery: source(users.instance),
      telemetry,
      stack: addTracing,
    });
    await client.get('/users/1');
    expect(telemetry.enabled).toBe(true);
    await client.close();
    expect(telemetry.enabled).toBe(false);
  });
});

describe('startServerSpan', () => {
  let tracing: TracingHandle | undefined;
  afterEach(async () => {
    await tracing?.shutdown();
    tracing = undefined;
  });

  it("joins the caller's trace and names the span by its route", async () => {
    tracing = startTracing({ service: 'users', exporter: 'memory' });
    const served = startServerSpan({
      method: 'GET',
      url: '/users/42?fields=name',
      route: '/users/:id',
      headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'user-agent': 'test' },
      serverAddress: '127.0.0.1',
      serverPort: 8080,
    });
    served.end(503);
    served.end(200);

    const [span] = await tracing.spans();
    expect(span?.name).toBe('GET /users/:id');
    expect(span?.kind).toBe(SpanKind.SERVER);
    expect(span?.spanContext().traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(span?.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    expect(span?.attributes).toEqual({
      'http.request.method': 'GET',
      'url.scheme': 'http',
      'url.path': '/users/42',
      'url.query': 'fields=name',
      'http.route': '/users/:id',
      'server.address': '127.0.0.1',
      'server.port': 8080,
      'user_agent.original': 'test',
      'http.response.status_code': 503,
      'error.type': '503',
    });
    expect(span?.status.code).toBe(SpanStatusCode.ERROR);
  });

  it('leaves a 4xx unmarked: the caller erred, not the server', async () => {
    tracing = startTracing({ service: 'users', exporter: 'memory' });
    const served = startServerSpan({ method: 'BREW', url: '/pot', headers: {} });
    served.end(418);
    const [span] = await tracing.spans();
    expect(span?.name).toBe('HTTP');
    expect(span?.attributes['http.request.method']).toBe('_OTHER');
    expect(span?.attributes['http.request.method_original']).toBe('BREW');
    expect(span?.attributes['error.type']).toBeUndefined();
    expect(span?.status.code).toBe(SpanStatusCode.UNSET);
  });
});
