import type { FastifyInstance } from 'fastify';
import { parseBlockingParams } from './blocking-query.js';
import { allValues, clientGone, consistencyHeaders, query, queryFlag, route, text } from './consul-http.js';
import { healthEntryJson } from './consul-json.js';
import type { ServerContext } from './server-context.js';

/** `/v1/health/...`: services with their checks, as blocking queries. */
export function registerHealthApi(app: FastifyInstance, { catalog, blocking, node }: ServerContext): void {
  route(app, 'GET', '/v1/health/service/:name', async (request, reply) => {
    const { name } = request.params as { name: string };
    const passing = queryFlag(request, 'passing');
    if (passing === 'invalid') return text(reply, 400, 'Invalid value for ?passing');
    const tags = allValues(request, 'tag');
    const topic = `service:${name}`;
    await blocking.wait(
      parseBlockingParams(query(request)),
      () => catalog.index,
      (t) => t === topic,
      clientGone(reply),
    );
    const entries = catalog
      .health(name)
      .filter((record) => tags.every((tag) => record.service.tags.includes(tag)))
      .filter((record) => passing !== true || record.checks.every((check) => check.status === 'passing'))
      .map((record) => healthEntryJson(node, record));
    return reply
      .code(200)
      .headers(consistencyHeaders(catalog.index))
      .type('application/json')
      .send(JSON.stringify(entries));
  });
}
