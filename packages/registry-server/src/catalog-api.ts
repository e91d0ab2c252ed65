import type { FastifyInstance } from 'fastify';
import { parseBlockingParams } from './blocking-query.js';
import { clientGone, consistencyHeaders, query, route } from './consul-http.js';
import type { ServerContext } from './server-context.js';

/** `/v1/catalog/...`: what is registered, whatever its health, as blocking queries. */
export function registerCatalogApi(app: FastifyInstance, { catalog, blocking }: ServerContext): void {
  route(app, 'GET', '/v1/catalog/services', async (request, reply) => {
    await blocking.wait(
      parseBlockingParams(query(request)),
      () => catalog.index,
      (topic) => topic.startsWith('service:'),
      clientGone(reply),
    );
    return reply
      .code(200)
      .headers(consistencyHeaders(catalog.index))
      .type('application/json')
      .send(JSON.stringify(Object.fromEntries(catalog.serviceTags())));
  });
}
