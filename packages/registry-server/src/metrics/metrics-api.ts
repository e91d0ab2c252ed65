import type { FastifyInstance, FastifyReply } from 'fastify';
import { agentNeed, openToAll } from '../acl/route-acl.js';
import { firstValue, route, text } from '../http/consul-http.js';
import type { ServerContext } from '../http/server-context.js';
import type { RegistryServerMetrics } from './server-metrics.js';

/**
 * The server's metrics in Prometheus's text format: on `GET /metrics`, open to every token as
 * `/v1/status/leader` is (the series carry counts and route templates, no names of services
 * or keys), and on Consul's `GET /v1/agent/metrics?format=prometheus`, which needs `agent:read`
 * on this node as Consul's does. Every request answered is timed under its route template.
 *
 * @example
 * if (context.metrics !== undefined) registerMetricsApi(app, context, context.metrics);
 * // curl http://127.0.0.1:8500/metrics
 */
export function registerMetricsApi(app: FastifyInstance, context: ServerContext, metrics: RegistryServerMetrics): void {
  app.addHook('onResponse', (request, reply, done) => {
    metrics.request({
      method: request.method,
      template: request.routeOptions.url,
      status: reply.statusCode,
      durationMs: reply.elapsedTime,
      blocking: request.method === 'GET' && isBlocking(firstValue(request, 'index')),
    });
    done();
  });
  const serve = async (reply: FastifyReply): Promise<FastifyReply> =>
    reply
      .code(200)
      .type(metrics.contentType)
      .send(await metrics.text());
  route(app, 'GET', '/metrics', openToAll, async (_request, reply) => serve(reply));
  const agentRead = { needs: () => [agentNeed(context.node.name, 'read')] };
  route(app, 'GET', '/v1/agent/metrics', agentRead, async (request, reply) => {
    const format = firstValue(request, 'format');
    // Consul answers its own JSON summary without ?format; only Prometheus's text is served here.
    if (format !== 'prometheus') {
      return text(reply, 400, 'only ?format=prometheus is served: the registry server keeps no JSON summary');
    }
    return serve(reply);
  });
}

// Consul holds a read whose ?index= is past 0; 0 (or none) answers at once.
function isBlocking(index: string | undefined): boolean {
  return index !== undefined && /^\d+$/.test(index) && Number(index) > 0;
}
