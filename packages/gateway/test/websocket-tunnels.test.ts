import { WebSocketServer } from 'ws';
import { SpanKind } from '@opentelemetry/api';
import { startTracing, type TracingHandle } from '@trellis/tracing/sdk';
import type { TrellisApp } from '@trellis/app';
import { ManualClock } from '@trellis/core';
import { gatewaySystem } from './gateway-fixtures.js';
import { TestSocket, within } from './ws-client.js';

// An in-process WebSocket echo service: first message says who it is and who the gateway said the user was.
function wsEcho(app: TrellisApp): void {
  const server = new WebSocketServer({ noServer: true });
  app.http.server.on('upgrade', (request, socket, head) => {
    server.handleUpgrade(request, socket, head, (ws) => {
      ws.send(
        JSON.stringify({
          instance: app.instance?.id,
          url: request.url,
          user: request.headers['x-user-id'] ?? null,
          forwardedFor: request.headers['x-forwarded-for'],
          traceparent: request.headers.traceparent ?? null,
        }),
      );
      ws.on('message', (data: Buffer) => ws.send(`${app.instance?.id}:${data.toString()}`));
    });
  });
  app.http.get('/sessions/:token', async (request, reply) =>
    (request.params as { token: string }).token === 't-ann'
      ? { user: { id: 'u-1', name: 'ann' } }
      : reply.code(404).send({ error: 'NO_SESSION', message: 'none' }),
  );
}

describe('WebSocket pass-through', () => {
  const system = gatewaySystem();
  const sockets: TestSocket[] = [];
  let tracing: TracingHandle | undefined;
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.close();
    await tracing?.shutdown();
    tracing = undefined;
  });
  const open = async (url: string, headers?: Record<string, string>): Promise<TestSocket> => {
    const socket = new TestSocket(url, headers);
    sockets.push(socket);
    await socket.opened();
    return socket;
  };

  it('pipes an upgrade to an instance picked by the load balancer, with the prefix stripped, identity and X-Forwarded-For set, and traced', async () => {
    tracing = startTracing({ service: 'gateway-test', exporter: 'memory' });
    const chat = await system.service('chat', wsEcho);
    const { url } = await system.gateway({
      auth: { service: 'chat', path: '/sessions/{token}' },
      routes: [
        { match: { pathPrefix: '/api/chat/' }, service: 'chat', stripPrefix: true, websocket: true, auth: 'optional' },
      ],
    });
    const ws = url.replace('http', 'ws');
    const socket = await open(`${ws}/api/chat/rooms/lobby`, { authorization: 'Bearer t-ann', 'x-user-id': 'u-admin' });
    const hello = JSON.parse(await socket.next()) as Record<string, unknown>;
    expect(hello).toMatchObject({
      instance: chat.instance?.id,
      url: '/rooms/lobby',
      user: 'u-1',
      forwardedFor: '127.0.0.1',
    });
    expect(hello.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0\d$/);
    expect(await socket.send('hi')).toBe(`${chat.instance?.id}:hi`);

    const spans = await tracing.spans();
    const upgrade = spans.find((s) => s.kind === SpanKind.SERVER && s.attributes['trellis.websocket'] === true);
    expect(upgrade?.attributes).toMatchObject({
      'trellis.service': 'chat',
      'trellis.instance': chat.instance?.id,
      'http.response.status_code': 101,
    });
  });

  it('refuses an upgrade on a route without websocket, and beyond maxTunnels with 503', async () => {
    await system.service('chat', wsEcho);
    const { url } = await system.gateway({
      maxTunnels: 1,
      routes: [
        { match: { pathPrefix: '/api/chat/' }, service: 'chat', websocket: true },
        { match: { pathPrefix: '/' }, service: 'chat' },
      ],
    });
    const ws = url.replace('http', 'ws');
    await expect(open(`${ws}/plain`)).rejects.toThrow('upgrade refused with 404');
    await open(`${ws}/api/chat/a`);
    await expect(open(`${ws}/api/chat/b`)).rejects.toThrow('upgrade refused with 503');
  });

  it('tries another instance when the one picked refuses the connection', async () => {
    const dead = await system.service('chat', wsEcho);
    const live = await system.service('chat', wsEcho);
    const { url } = await system.gateway({
      routes: [{ match: { pathPrefix: '/' }, service: 'chat', websocket: true, strategy: 'round-robin' }],
    });
    // Still registered, no longer listening: as a process that died a moment ago.
    await new Promise<void>((resolve) => {
      dead.http.server.close(() => resolve());
      dead.http.server.closeAllConnections();
    });
    for (let i = 0; i < 2; i++) {
      const socket = await open(url.replace('http', 'ws'));
      expect((JSON.parse(await socket.next()) as { instance: string }).instance).toBe(live.instance?.id);
    }
  });

  it('applies the route rate limit to upgrades: 429 beyond it', async () => {
    await system.service('chat', wsEcho);
    const { url } = await system.gateway({
      clock: new ManualClock(),
      rateLimit: { ratePerSecond: 1, burst: 1 },
      routes: [{ match: { pathPrefix: '/' }, service: 'chat', websocket: true }],
    });
    await open(url.replace('http', 'ws'));
    await expect(open(url.replace('http', 'ws'))).rejects.toThrow('upgrade refused with 429');
  });

  it('closes the tunnels still open when the gateway shuts down, after its drain', async () => {
    await system.service('chat', wsEcho);
    const { app, url, gateway } = await system.gateway({
      routes: [{ match: { pathPrefix: '/' }, service: 'chat', websocket: true }],
    });
    const socket = await open(url.replace('http', 'ws'));
    await socket.next();
    expect(gateway.openTunnels).toBe(1);
    await within(5_000, 'the gateway closing', app.close());
    await within(5_000, 'the socket closing', socket.closed);
    expect(gateway.openTunnels).toBe(0);
  });
});
