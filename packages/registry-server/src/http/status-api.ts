import type { FastifyInstance } from 'fastify';
import { openToAll } from '../acl/route-acl.js';
import { route } from './consul-http.js';
import { serverAddress } from '../catalog/consul-json.js';
import type { ServerContext } from './server-context.js';

/**
 * `/v1/status/...`: the Raft leader and peers. This server is a cluster of one, its own
 * leader, named by Consul's server RPC address (`127.0.0.1:8300` style).
 */
export function registerStatusApi(app: FastifyInstance, { node }: ServerContext): void {
  route(app, 'GET', '/v1/status/leader', openToAll, async (_request, reply) =>
    reply
      .code(200)
      .type('application/json')
      .send(JSON.stringify(serverAddress(node))),
  );
  route(app, 'GET', '/v1/status/peers', openToAll, async (_request, reply) =>
    reply
      .code(200)
      .type('application/json')
      .send(JSON.stringify([serverAddress(node)])),
  );
}
