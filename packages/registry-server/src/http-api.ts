import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import type { Catalog } from './catalog.js';
import { healthEntryJson, type NodeInfo } from './consul-json.js';
import { decodeServiceDefinition, RequestDecodeError, type CheckStatus } from './service-definition.js';

const allMethods: HTTPMethods[] = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

type Params = { readonly id: string } | { readonly name: string };
type Query = Record<string, string | string[] | undefined>;

/**
 * Maps the Consul HTTP API subset onto a {@link Catalog}: agent service register/deregister,
 * TTL check pass/warn/fail, and health/service with `?passing`, with Consul's field names,
 * status codes and headers. Errors are answered as text/plain, like Consul's; unknown routes
 * get 404, known routes with another method 405.
 *
 * Every request body is read as text whatever its content type, because Consul tools send
 * JSON with any (curl's `--data` says form-urlencoded).
 */
export function registerHttpApi(app: FastifyInstance, catalog: Catalog, node: NodeInfo): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));
  app.setNotFoundHandler((_request, reply) => text(reply, 404, '404 page not found'));
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode ?? 500;
    if (status < 500) return text(reply, status, error.message);
    request.log.error({ err: error }, 'request failed');
    return text(reply, 500, 'internal error');
  });

  route(app, 'PUT', '/v1/agent/service/register', async (request, reply) => {
    let def;
    try {
      def = decodeServiceDefinition(typeof request.body === 'string' ? request.body : undefined);
    } catch (error) {
      if (error instanceof RequestDecodeError) return text(reply, 400, error.message);
      throw error;
    }
    const replaceExistingChecks = queryFlag(request, 'replace-existing-checks');
    if (replaceExistingChecks === 'invalid') return text(reply, 400, 'Invalid value for ?replace-existing-checks');
    catalog.register(def, { replaceExistingChecks });
    return reply.code(200).send();
  });

  route(app, 'PUT', '/v1/agent/service/deregister/:id', async (request, reply) => {
    const { id } = request.params as { id: string };
    if (!catalog.deregister(id)) {
      return text(
        reply,
        404,
        `Unknown service ID ${JSON.stringify(id)}. Ensure that the service ID is passed, not the service name.`,
      );
    }
    return reply.code(200).send();
  });

  const statusOf: Record<string, CheckStatus> = { pass: 'passing', warn: 'warning', fail: 'critical' };
  for (const [verb, status] of Object.entries(statusOf)) {
    route(app, 'PUT', `/v1/agent/check/${verb}/:id`, async (request, reply) => {
      const { id } = request.params as { id: string };
      if (!catalog.updateCheck(id, status, firstValue(request, 'note') ?? '')) {
        return text(
          reply,
          404,
          `Unknown check ID ${JSON.stringify(id)}. Ensure that the check ID is passed, not the check name.`,
        );
      }
      return reply.code(200).send();
    });
  }

  route(app, 'GET', '/v1/health/service/:name', async (request, reply) => {
    const { name } = request.params as { name: string };
    const passing = queryFlag(request, 'passing');
    if (passing === 'invalid') return text(reply, 400, 'Invalid value for ?passing');
    const tags = allValues(request, 'tag');
    const entries = catalog
      .health(name)
      .filter((record) => tags.every((tag) => record.service.tags.includes(tag)))
      .filter((record) => passing !== true || record.checks.every((check) => check.status === 'passing'))
      .map((record) => healthEntryJson(node, record));
    return reply
      .code(200)
      .header('X-Consul-Index', String(catalog.index))
      .header('X-Consul-KnownLeader', 'true')
      .header('X-Consul-LastContact', '0')
      .type('application/json')
      .send(JSON.stringify(entries));
  });
}

// One route, plus a 405 for the other methods on the same path, as Consul answers.
function route(
  app: FastifyInstance,
  method: HTTPMethods,
  url: string,
  handler: (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>,
): void {
  app.route<{ Params: Params }>({ method, url, handler });
  app.route({
    // Fastify answers HEAD itself wherever there is a GET.
    method: allMethods.filter((m) => m !== method && !(method === 'GET' && m === 'HEAD')),
    url,
    handler: async (request, reply) => text(reply.header('Allow', method), 405, `method ${request.method} not allowed`),
  });
}

function text(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).type('text/plain; charset=utf-8').send(message);
}

function query(request: FastifyRequest): Query {
  return (request.query ?? {}) as Query;
}

// Go's url.Values.Get: the first value of a repeated parameter.
function firstValue(request: FastifyRequest, key: string): string | undefined {
  const value = query(request)[key];
  return Array.isArray(value) ? value[0] : value;
}

function allValues(request: FastifyRequest, key: string): string[] {
  const value = query(request)[key];
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

// Consul's boolean parameters: present with no value means true, otherwise strconv.ParseBool.
function queryFlag(request: FastifyRequest, key: string): boolean | 'invalid' {
  const value = firstValue(request, key);
  if (value === undefined) return false;
  if (['', '1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return 'invalid';
}
