import type { Server, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Clock } from '@trellis/core';

/** What {@link ServerConnections.cut} cut. */
export interface CutConnections {
  readonly connections: number;
  readonly requests: number;
}

/**
 * The connections of an HTTP server and the requests in flight on each, so that a shutdown can
 * close every connection the moment it carries no request, and cut the rest at a deadline.
 *
 * Node's own `closeIdleConnections()` (Fastify's `forceCloseConnections: 'idle'`) leaves open a
 * connection that has not sent its first request yet: llhttp counts it active, so that its
 * headers timeout runs. Such connections are common: undici (Node's fetch) opens a spare one as
 * soon as a request on its connection is aborted, and keeps it for its 4 s keep-alive timeout,
 * so that `server.close()` waited those 4 s. Here such a connection is closed like an idle one.
 */
export class ServerConnections {
  readonly #clock: Clock;
  /** Requests in flight per open connection; bounded by the connections the server holds. */
  readonly #sockets = new Map<Socket, number>();
  /** Connections upgraded (WebSockets): their owner closes them; only the cut ends them here. */
  readonly #upgraded = new Set<Socket>();
  #inFlight = 0;
  #lastArrivalAt: number | undefined;
  #closing = false;

  constructor(server: Server, clock: Clock) {
    this.#clock = clock;
    server.on('connection', (socket: Socket) => {
      this.#sockets.set(socket, 0);
      socket.once('close', () => {
        this.#sockets.delete(socket);
        this.#upgraded.delete(socket);
      });
      // A connection opened after the server stopped listening cannot be: close() refuses them.
    });
    server.on('request', (request: IncomingMessage, response: ServerResponse) => this.#arrived(request, response));
    watchUpgrades(server, (socket) => {
      if (this.#sockets.has(socket)) this.#upgraded.add(socket);
    });
  }

  /** Requests received and not yet answered (or abandoned). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Open connections. */
  get open(): number {
    return this.#sockets.size;
  }

  /** The clock's reading when the last request arrived; undefined before the first. */
  get lastArrivalAt(): number | undefined {
    return this.#lastArrivalAt;
  }

  /**
   * From now on, closes every connection once it carries no request: those idle or never used
   * at once, the others after their last response is written; upgraded ones (WebSockets) are
   * left to their owner, until {@link cut}. Call when the server stops listening.
   */
  closeWhenIdle(): void {
    this.#closing = true;
    for (const [socket, requests] of this.#sockets) {
      if (requests === 0 && !this.#upgraded.has(socket)) endSocket(socket);
    }
  }

  /** Cuts every connection still open, requests in flight or not. */
  cut(): CutConnections {
    let requests = 0;
    const connections = this.#sockets.size;
    for (const [socket, count] of this.#sockets) {
      requests += count;
      socket.destroy();
    }
    return { connections, requests };
  }

  #arrived(request: IncomingMessage, response: ServerResponse): void {
    const socket = request.socket;
    this.#lastArrivalAt = this.#clock.now();
    this.#inFlight++;
    this.#sockets.set(socket, (this.#sockets.get(socket) ?? 0) + 1);
    response.once('close', () => {
      this.#inFlight--;
      const left = (this.#sockets.get(socket) ?? 1) - 1;
      if (!this.#sockets.has(socket)) return;
      this.#sockets.set(socket, left);
      if (this.#closing && left === 0) endSocket(socket);
    });
  }
}

/**
 * An upgraded connection (a WebSocket) is no longer HTTP: whoever took the upgrade closes it, as
 * @fastify/websocket does in its preClose hook (a close frame, 1001), so shutdown must not end it
 * as an idle connection when it stops listening (the client would see 1006 before that hook
 * runs); one still open at the shutdown timeout is cut with the rest. Listened for only while
 * someone else takes upgrades: an `upgrade` listener makes Node hand over every Upgrade request
 * instead of serving it as a plain one, so one of ours alone would leave such requests unanswered.
 */
function watchUpgrades(server: Server, upgraded: (socket: Socket) => void): void {
  const onUpgrade = (_request: IncomingMessage, socket: Socket): void => upgraded(socket);
  let listening = false;
  server.on('newListener', (event: string | symbol, listener: unknown) => {
    if (event !== 'upgrade' || listener === onUpgrade || listening) return;
    listening = true;
    server.on('upgrade', onUpgrade);
  });
  server.on('removeListener', (event: string | symbol, listener: unknown) => {
    if (event !== 'upgrade' || listener === onUpgrade || !listening) return;
    if (server.listeners('upgrade').every((l) => l === onUpgrade)) {
      listening = false;
      server.removeListener('upgrade', onUpgrade);
    }
  });
}

// Ends the connection once what was written is flushed; a connection that never answered
// anything has nothing to flush and goes at once.
function endSocket(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.bytesWritten === 0) socket.destroy();
  else socket.end(() => socket.destroy());
}
