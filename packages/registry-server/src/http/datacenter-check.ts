import type { FastifyInstance } from 'fastify';
import { firstValue, text } from './consul-http.js';

/** Consul's answer when a request names a datacenter it cannot reach (structs.ErrNoDCPath). */
export const noPathToDatacenter = 'No path to datacenter';

/**
 * Answers a request whose `?dc=` names another datacenter with 500 "No path to datacenter",
 * as a Consul agent does when it has no route there, instead of answering with this
 * datacenter's data. Every `/v1` route takes `?dc=` but the agent's own (`/v1/agent/...`) and
 * `catalog/datacenters`, as in Consul. Runs before ACLs, as Consul forwards before it resolves
 * a token.
 *
 * @example
 * registerDatacenterCheck(app, 'dc1'); // GET /v1/kv/a?dc=dc2 -> 500 No path to datacenter
 */
export function registerDatacenterCheck(app: FastifyInstance, datacenter: string): void {
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?', 1)[0] ?? '';
    if (!path.startsWith('/v1/') || path.startsWith('/v1/agent/') || path === '/v1/catalog/datacenters') return;
    const dc = firstValue(request, 'dc');
    if (dc === undefined || dc === '' || dc === datacenter) return;
    return text(reply, 500, noPathToDatacenter);
  });
}
