import http from 'node:http';
import type { AddressInfo } from 'node:net';

// A minimal JSON server for benchmarks, run as its own process so that it does not share the
// event loop with the client being measured. It sends its port to the parent over IPC.
const server = http.createServer((_req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end('{"id":"1","name":"Ada"}');
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as AddressInfo).port });
});
process.on('disconnect', () => server.close(() => process.exit(0)));
