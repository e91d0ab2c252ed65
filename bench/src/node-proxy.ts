import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

// The floor of a reverse proxy in Node for the gateway benchmark: node:http in, undici out,
// round robin over the instances, no routing, no governance, nothing but the prefix removed.
// What the gateway costs beyond it is Trellis's; what it costs beside nginx is Node's.
const ports = (process.env.UPSTREAM_PORTS ?? '').split(',').map(Number);
const pools = ports.map((port) => new Pool(`http://127.0.0.1:${port}`, { connections: 64 }));
const prefix = '/api/users';
let next = 0;
const server = http.createServer((req, res) => {
  const pool = pools[next++ % pools.length] as Pool;
  const url = req.url ?? '/';
  pool.request({ method: 'GET', path: url.startsWith(prefix) ? url.slice(prefix.length) : url }).then(
    async (answer) => {
      const body = Buffer.from(await answer.body.arrayBuffer());
      res.writeHead(answer.statusCode, { 'content-type': String(answer.headers['content-type'] ?? '') });
      res.end(body);
    },
    () => {
      res.statusCode = 502;
      res.end();
    },
  );
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }));
process.on('disconnect', () => server.close(() => process.exit(0)));
