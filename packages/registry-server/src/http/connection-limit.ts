import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** Consul's `limits.http_max_conns_per_client`: 200 open connections per client address. */
export const defaultMaxConnsPerClient = 200;

// Consul's answer (go-connlimit's default 429 handler), written before the socket is closed.
const tooManyText = 'Your IP is issuing too many concurrent connections, please rate limit your calls\n';
const tooMany =
  'HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nConnection: close\r\n' +
  `Content-Length: ${Buffer.byteLength(tooManyText)}\r\n\r\n${tooManyText}`;

/** What {@link limitConnectionsPerClient} counts. */
export interface ConnectionCount {
  /** Connections open now, from every address. */
  readonly open: number;
  /** Client addresses with an open connection now. */
  readonly clients: number;
}

/**
 * Caps the connections one client address may hold open, as Consul's
 * `http_max_conns_per_client` does: a connection beyond `max` is answered 429 with Consul's
 * text and closed before any request on it is read, so that one client holding sockets open
 * (slow bodies, idle keep-alive, a leak) cannot use up the server's file descriptors while
 * others are still served. 0 turns the cap off.
 *
 * The count is per address as the server sees it (IPv4 and IPv6 alike); the map holds only
 * addresses with a connection open, so it is bounded by the connections themselves.
 *
 * @returns the counts, for stats.
 * @example
 * const counts = limitConnectionsPerClient(app.server, 200);
 * counts().open; // connections open now
 */
export function limitConnectionsPerClient(server: Server, max: number): () => ConnectionCount {
  const perClient = new Map<string, number>();
  let open = 0;
  // The http server's own listener parses requests; it runs only for connections let in.
  const parsers = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    const count = (perClient.get(address) ?? 0) + 1;
    if (max > 0 && count > max) {
      // Answered without reading: whatever the client sent is never parsed.
      socket.on('error', () => undefined);
      socket.end(tooMany);
      // A client that never reads its answer must not hold the socket either.
      socket.setTimeout(1_000, () => socket.destroy());
      return;
    }
    perClient.set(address, count);
    open++;
    socket.once('close', () => {
      open--;
      const left = (perClient.get(address) ?? 1) - 1;
      if (left === 0) perClient.delete(address);
      else perClient.set(address, left);
    });
    for (const parse of parsers) parse.call(server, socket);
  });
  return () => ({ open, clients: perClient.size });
}
