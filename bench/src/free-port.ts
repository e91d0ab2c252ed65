import { createServer, type AddressInfo } from 'node:net';

/** A port on 127.0.0.1 the system had free a moment ago (taken, then given back), for a server the bench starts. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
