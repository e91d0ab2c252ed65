import { SpanKind } from '@opentelemetry/api';
import { z } from 'zod';
import { MemoryRegistry } from '@trellis/registry';
import { Controller, Get, Param, TrellisApp } from '@trellis/app';
import { startTracing, type TracingHandle } from '@trellis/tracing/sdk';
import { parseSamples } from '../../metrics/test/prometheus-text.js';

@Controller('/users')
class UsersController {
  @Get('/:id/posts/:post')
  post(@Param('id') id: string, @Param('post', z.coerce.number()) post: number): unknown {
    return { id, post };
  }
}

describe('controller routes named by their template', () => {
  let registry: MemoryRegistry;
  let tracing: TracingHandle;
  let app: TrellisApp;

  beforeEach(() => {
    registry = new MemoryRegistry();
    tracing = startTracing({ service: 'test', exporter: 'memory' });
  });
  afterEach(async () => {
    await app.close();
    await registry.close();
    await tracing.shutdown();
  });

  it("labels the served-request series and the SERVER span with prefix + path, never the request's path", async () => {
    app = new TrellisApp({
      service: 'users',
      registry,
      logLevel: 'silent',
      drainMs: 0,
      controllers: [UsersController],
    });
    const { url } = await app.start();
    expect((await fetch(`${url}/users/7/posts/1`)).status).toBe(200);
    expect((await fetch(`${url}/users/8/posts/2`)).status).toBe(200);
    expect((await fetch(`${url}/users/9/posts/x`)).status).toBe(400);

    const samples = parseSamples(await (await fetch(`${url}/metrics`)).text());
    const served = samples
      .filter((s) => s.name === 'http_server_request_duration_seconds_count')
      .map((s) => [s.labels.method, s.labels.route, s.labels.status_class, s.value]);
    expect(served).toEqual([
      ['GET', '/users/:id/posts/:post', '2xx', 2],
      ['GET', '/users/:id/posts/:post', '4xx', 1],
    ]);

    const spans = (await tracing.spans()).filter((s) => s.kind === SpanKind.SERVER);
    expect(spans.map((s) => s.name)).toEqual(Array(3).fill('GET /users/:id/posts/:post'));
    expect(spans.map((s) => s.attributes['http.route'])).toEqual(Array(3).fill('/users/:id/posts/:post'));
    expect(spans.map((s) => s.attributes['url.path'])).toEqual([
      '/users/7/posts/1',
      '/users/8/posts/2',
      '/users/9/posts/x',
    ]);
  });
});
