import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ServiceInstance } from '@trellis/core';

export interface TestServer {
  readonly instance: ServiceInstance;
  /** The node server, for tests that watch its requests and connections. */
  readonly server: http.Server;
  readonly requests: Array<{ method: string; url: string; body: string }>;
  close(): Promise<void>;
}

/** A real HTTP server on 127.0.0.1 that answers with `handler` and records what it got. */
export async function startServer(
  id: string,
  handler: (req: http.IncomingMessage, body: string, res: http.ServerResponse) => void = (_req, _body, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ servedBy: id }));
  },
): Promise<TestServer> {
  const requests: TestServer['requests'] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', body });
      handler(req, body, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    instance: { id, service: 'users', address: '127.0.0.1', port, tags: [], meta: { weight: 1, labels: {} } },
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** An address where nothing listens: a port that was bound a moment ago and released. */
export async function deadInstance(id: string): Promise<ServiceInstance> {
  const server = await startServer(id);
  await server.close();
  return server.instance;
}
