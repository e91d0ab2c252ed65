import { SpanKind } from '@opentelemetry/api';
import { startTracing, type TracingHandle } from '@trellis/tracing/sdk';
import type { GatewayStatus } from '@trellis/gateway';
import { gatewaySystem, echo } from './gateway-fixtures.js';

describe('the admin page and routes from code', () => {
  const system = gatewaySystem();
  let tracing: TracingHandle | undefined;
  afterEach(async () => {
    await tracing?.shutdown();
    tracing = undefined;
  });

  it('lists routes, their services, the instances with health and breaker state, and the last reload', async () => {
    const users = await system.service('users', echo);
    const { url } = await system.gateway({
      routes: [
        { name: 'users-api', match: { pathPrefix: '/api/users/' }, service: 'users', stripPrefix: true, auth: 'none' },
        { name: 'slash', match: { path: '/u' }, redirect: '/api/users/' },
      ],
    });
    await fetch(`${url}/api/users/1`);
    const status = (await (await fetch(`${url}/gateway.json`)).json()) as GatewayStatus;
    expect(status.routes).toEqual([
      {
        name: 'users-api',
        match: { pathPrefix: '/api/users/' },
        kind: 'service',
        target: 'users',
        auth: 'none',
        websocket: false,
        instances: [
          {
            id: users.instance?.id,
            address: '127.0.0.1',
            port: users.instance?.port,
            healthy: true,
            breaker: expect.objectContaining({ state: 'closed' }) as unknown,
          },
        ],
      },
      expect.objectContaining({ name: 'slash', kind: 'redirect', target: '/api/users/', instances: [] }) as unknown,
    ]);
    expect(status.lastReload).toMatchObject({ source: 'code', ok: true, routes: 2 });
    const page = await fetch(`${url}/gateway`);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await page.text();
    expect(html).toContain('users-api');
    expect(html).toContain(users.instance?.id);
  });

  it('applies routes from code all or nothing: invalid ones throw naming the field and leave the routes in force', async () => {
    await system.service('one', echo);
    await system.service('two', echo);
    const { url, gateway } = await system.gateway({ routes: [{ match: { pathPrefix: '/' }, service: 'one' }] });
    expect((await fetch(`${url}/x`)).headers.get('x-served-by')).toMatch(/^one-/);
    expect(() =>
      gateway.setRoutes([
        { match: { pathPrefix: '/' }, service: 'two' },
        { match: { pathPrefix: '/' }, service: 'two', auth: 'required' },
      ]),
    ).toThrow('invalid configuration "routes[1].auth"');
    expect((await fetch(`${url}/x`)).headers.get('x-served-by')).toMatch(/^one-/);
    expect(gateway.lastReload).toMatchObject({ source: 'code', ok: false, routes: 1 });
    gateway.setRoutes([{ match: { pathPrefix: '/' }, service: 'two' }]);
    expect((await fetch(`${url}/x`)).headers.get('x-served-by')).toMatch(/^two-/);
  });

  it('starts the trace at the edge: the service serves the request in the gateway’s trace', async () => {
    tracing = startTracing({ service: 'gateway-test', exporter: 'memory' });
    await system.service('users', echo);
    const { url } = await system.gateway({ routes: [{ match: { pathPrefix: '/users/' }, service: 'users' }] });
    expect((await fetch(`${url}/users/1`)).status).toBe(200);
    // The registry server's own spans aside.
    const spans = (await tracing.spans()).filter((s) => s.instrumentationScope.name === '@trellis/tracing');
    const servers = spans.filter((s) => s.kind === SpanKind.SERVER);
    const client = spans.find((s) => s.kind === SpanKind.CLIENT);
    expect(servers).toHaveLength(2);
    expect(new Set(servers.map((s) => s.spanContext().traceId)).size).toBe(1);
    expect(client?.spanContext().traceId).toBe(servers[0]?.spanContext().traceId);
    expect(servers.map((s) => s.name).sort()).toEqual(['GET /*', 'GET /users/*']);
  });
});
