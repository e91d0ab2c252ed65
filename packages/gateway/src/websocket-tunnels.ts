import { STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { propagation } from '@opentelemetry/api';
import type { FastifyBaseLogger } from 'fastify';
import { ConnectionError, type ServiceInstance } from '@trellis/core';
import { startServerSpan } from '@trellis/tracing';
import { forwardedHeaders } from './forwarded-headers.js';
import type { GatewayRoute } from './route-table.js';
import type { Refusal, SessionUser } from './session-check.js';

/** What the tunnels need from the gateway. */
export interface TunnelEnvironment {
  readonly find: (method: string, url: string, headers: IncomingHttpHeaders) => GatewayRoute | undefined;
  /** The session check of a route: the user, none, or the refusal to answer. */
  readonly authorize: (route: GatewayRoute, headers: IncomingHttpHeaders) => Promise<SessionUser | undefined | Refusal>;
  readonly maxTunnels: number;
  readonly log: FastifyBaseLogger;
}

interface Tunnel {
  readonly client: Duplex;
  readonly upstream: net.Socket;
  readonly route: string;
  readonly instance: string;
}

/** Attempts of an upgrade whose connection was refused before another instance is given up on. */
const maxConnectAttempts = 2;

/**
 * WebSocket pass-through as a raw socket pipe, not with the `ws` package: the gateway has no
 * reason to parse frames, so it forwards the upgrade request (with the session's identity
 * headers and X-Forwarded-*) to an instance the route's load balancer picks, and from then on
 * copies bytes both ways. Whatever the two ends negotiate (subprotocols, compression) passes
 * through untouched, and no frame is buffered or re-encoded.
 *
 * Bounded: at most `maxTunnels` open (503 beyond); {@link closeAll} (the gateway's shutdown,
 * after its drain) closes those still open, so that their clients see a close and reconnect
 * elsewhere. Each upgrade is a span (service, instance, the instance's answer).
 */
export class WebSocketTunnels {
  readonly #env: TunnelEnvironment;
  readonly #open = new Set<Tunnel>();
  #closed = false;

  constructor(env: TunnelEnvironment) {
    this.#env = env;
  }

  /** Tunnels open now. */
  get open(): number {
    return this.#open.size;
  }

  /** The open tunnels, by route and instance. */
  list(): Array<{ route: string; instance: string }> {
    return [...this.#open].map((t) => ({ route: t.route, instance: t.instance }));
  }

  /** For the HTTP server's `upgrade` event. */
  handle(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const url = request.url ?? '/';
    const route = this.#env.find('GET', url, request.headers);
    if (route?.websocket !== true || route.client === undefined) {
      refuse(socket, 404, 'NO_ROUTE', `no WebSocket route matches ${url.split('?')[0] ?? url}`);
      return;
    }
    if (this.#closed) {
      refuse(socket, 503, 'DRAINING', 'the gateway is shutting down; connect again');
      return;
    }
    if (this.#open.size >= this.#env.maxTunnels) {
      refuse(
        socket,
        503,
        'TOO_MANY_TUNNELS',
        `${this.#env.maxTunnels} WebSocket connections are open, the most allowed`,
      );
      return;
    }
    const limit = route.rateLimit?.limiter(request.headers, request.socket.remoteAddress ?? '').tryAcquire();
    if (limit !== undefined && !limit.granted) {
      const retryAfterMs = limit.retryAfterMs ?? 1_000;
      refuse(socket, 429, 'RATE_LIMITED', `too many requests; retry in ${retryAfterMs} ms`, {
        'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1_000))),
      });
      return;
    }
    const served = startServerSpan({
      method: 'GET',
      url,
      headers: request.headers,
      route: route.name,
      clientAddress: request.socket.remoteAddress,
      protocolVersion: request.httpVersion,
    });
    served.span.setAttribute('trellis.service', route.client.service);
    served.span.setAttribute('trellis.gateway.route', route.name);
    served.span.setAttribute('trellis.websocket', true);
    this.#connect(request, socket, head, route, served).catch((error: unknown) => {
      served.end(undefined, error);
      this.#env.log.warn({ err: error, route: route.name }, 'WebSocket upgrade failed');
      if (!socket.destroyed) {
        const refused = error instanceof ConnectionError || (error as { code?: string }).code === 'NO_INSTANCES';
        refuse(
          socket,
          refused ? 503 : 502,
          (error as { code?: string }).code ?? 'UPGRADE_FAILED',
          (error as Error).message,
        );
      }
    });
  }

  /** Closes every open tunnel, and refuses upgrades from now on. */
  closeAll(): number {
    this.#closed = true;
    const count = this.#open.size;
    for (const tunnel of this.#open) {
      tunnel.upstream.destroy();
      tunnel.client.destroy();
    }
    this.#open.clear();
    return count;
  }

  async #connect(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    route: GatewayRoute,
    served: ReturnType<typeof startServerSpan>,
  ): Promise<void> {
    const client = route.client;
    if (client === undefined) return;
    const authorized = await this.#env.authorize(route, request.headers);
    if (authorized !== undefined && 'status' in authorized) {
      served.end(authorized.status);
      refuse(socket, authorized.status, authorized.code, authorized.message);
      return;
    }
    const url = request.url ?? '/';
    const path = route.targetPath(url);
    const headers = forwardedHeaders(request.headers, {
      clientAddress: request.socket.remoteAddress ?? '',
      proto: 'encrypted' in request.socket ? 'https' : 'http',
      host: request.headers.host,
      prefix: route.forwardedPrefix,
      user: authorized,
    });
    // The instance joins the gateway's trace: the upgrade request carries the span's context.
    propagation.inject(served.context, headers);
    const avoid = new Set<string>();
    for (let attempt = 1; ; attempt++) {
      if (socket.destroyed) {
        served.end(undefined, new Error('the client went away before the upgrade'));
        return;
      }
      const instance = await client.pick({ method: 'GET', path, headers }, avoid);
      served.span.setAttribute('trellis.instance', instance.id);
      let upstream: net.Socket;
      try {
        upstream = await connectTo(instance, route.config.attemptTimeoutMs ?? defaultConnectTimeoutMs);
      } catch (error) {
        const connectionError = new ConnectionError(client.service, instance.id, false, error);
        if (attempt >= maxConnectAttempts) throw connectionError;
        avoid.add(instance.id);
        continue;
      }
      this.#pipe(request, socket, head, upstream, path, headers, instance, route, served);
      return;
    }
  }

  #pipe(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    upstream: net.Socket,
    path: string,
    headers: Record<string, string>,
    instance: ServiceInstance,
    route: GatewayRoute,
    served: ReturnType<typeof startServerSpan>,
  ): void {
    if (socket.destroyed || this.#closed) {
      upstream.destroy();
      served.end(undefined, new Error('closed before the upgrade'));
      return;
    }
    const tunnel: Tunnel = { client: socket, upstream, route: route.name, instance: instance.id };
    this.#open.add(tunnel);
    let lines = `GET ${path} HTTP/1.1\r\nhost: ${instance.address}:${instance.port}\r\nconnection: Upgrade\r\nupgrade: ${String(request.headers.upgrade ?? 'websocket')}\r\n`;
    for (const name in headers) lines += `${name}: ${headers[name] as string}\r\n`;
    upstream.write(`${lines}\r\n`);
    if (head.length > 0) upstream.write(head);
    // The instance's answer (101, or a refusal that passes through as it is) ends the upgrade's span.
    upstream.once('data', (chunk: Buffer) => {
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(chunk.subarray(0, 16).toString('latin1'))?.[1];
      served.end(status === undefined ? 502 : Number(status));
    });
    upstream.setNoDelay(true);
    if (socket instanceof net.Socket) socket.setNoDelay(true);
    const close = (): void => {
      if (!this.#open.delete(tunnel)) return;
      upstream.destroy();
      socket.destroy();
      served.end(undefined, new Error('the tunnel closed before the instance answered'));
    };
    upstream.on('error', close);
    upstream.on('close', close);
    socket.on('close', close);
    socket.pipe(upstream);
    upstream.pipe(socket);
  }
}

/** How long an upgrade waits for the instance to accept the connection, for a route without `attemptTimeoutMs`. */
const defaultConnectTimeoutMs = 10_000;

// Bounded: an instance that never accepts (a black-holed address) fails the attempt after `timeoutMs`.
function connectTo(instance: ServiceInstance, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const upstream = net.connect({ host: instance.address, port: instance.port });
    const failed = (error: Error): void => {
      clearTimeout(timer);
      upstream.destroy();
      reject(error);
    };
    const timer = setTimeout(() => failed(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    upstream.once('error', failed);
    upstream.once('connect', () => {
      clearTimeout(timer);
      upstream.off('error', failed);
      resolve(upstream);
    });
  });
}

/** Answers an upgrade with an HTTP error in the app's shape, `{ error, message }`, and closes the socket. */
function refuse(
  socket: Duplex,
  status: number,
  code: string,
  message: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ error: code, message });
  let extra = '';
  for (const name in headers) extra += `${name}: ${headers[name] as string}\r\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}connection: close\r\n\r\n${body}`,
  );
}
