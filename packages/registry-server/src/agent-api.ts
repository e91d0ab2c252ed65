import type { FastifyInstance } from 'fastify';
import { firstValue, queryFlag, route, text } from './consul-http.js';
import type { ServerContext } from './server-context.js';
import { decodeServiceDefinition, RequestDecodeError, type CheckStatus } from './service-definition.js';

/** `/v1/agent/...`: registering and deregistering services, and updating TTL checks. */
export function registerAgentApi(app: FastifyInstance, { catalog }: ServerContext): void {
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
}
