import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { startTracing, type TracingHandle } from '@trellis/tracing/sdk';
import { closeAll, get, put, startServer } from './helpers.js';

describe('registry server tracing', () => {
  let tracing: TracingHandle;
  beforeEach(() => {
    tracing = startTracing({ service: 'registry', exporter: 'memory' });
  });
  afterEach(async () => {
    await closeAll();
    await tracing.shutdown();
  });

  it("makes a SERVER span per request, named by route and joined to the caller's trace", async () => {
    const { url } = await startServer();
    const registered = await fetch(`${url}/v1/agent/service/register`, {
      method: 'PUT',
      headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
      body: JSON.stringify({ ID: 'users-1', Name: 'users', Address: '127.0.0.1', Port: 4001 }),
    });
    expect(registered.status).toBe(200);
    expect((await get(`${url}/v1/health/service/users?passing=true`)).status).toBe(200);
    expect((await put(`${url}/v1/kv/a?cas=abc`, 'x')).status).toBe(400);

    const spans = await tracing.spans();
    expect(spans.map((s) => [s.name, s.kind, s.attributes['http.response.status_code']])).toEqual([
      ['PUT /v1/agent/service/register', SpanKind.SERVER, 200],
      ['GET /v1/health/service/:name', SpanKind.SERVER, 200],
      ['PUT /v1/kv/*', SpanKind.SERVER, 400],
    ]);
    const [register, health, kv] = spans;
    expect(register?.spanContext().traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(register?.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    expect(health?.parentSpanContext).toBeUndefined();
    expect(health?.attributes).toMatchObject({
      'http.request.method': 'GET',
      'http.route': '/v1/health/service/:name',
      'url.path': '/v1/health/service/users',
      'url.query': 'passing=true',
    });
    // A 400 is the caller's mistake: not marked as the server's error.
    expect(kv?.status.code).toBe(SpanStatusCode.UNSET);
    expect(kv?.attributes['error.type']).toBeUndefined();
  });
});
