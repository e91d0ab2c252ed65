import type { FastifyError, FastifyInstance } from 'fastify';
import { registerAclApi } from '../acl/acl-api.js';
import { registerAclEnforcement } from '../acl/acl-enforcement.js';
import { registerAgentApi } from '../catalog/agent-api.js';
import { registerCatalogApi } from '../catalog/catalog-api.js';
import { registerBodyEncoding } from './body-encoding.js';
import { text } from './consul-http.js';
import { registerDatacenterCheck } from './datacenter-check.js';
import { registerDashboard } from '../dashboard/dashboard.js';
import { registerHealthApi } from '../catalog/health-api.js';
import { registerKvApi } from '../kv/kv-api.js';
import { registerPrometheusTargets } from '../catalog/prometheus-targets.js';
import { registerMetricsApi } from '../metrics/metrics-api.js';
import { registerTxnApi } from '../kv/txn-api.js';
import { registerSessionApi } from '../session/session-api.js';
import { registerRequestTracing } from './request-tracing.js';
import type { ServerContext } from './server-context.js';
import { registerStatusApi } from './status-api.js';

/**
 * The Consul HTTP API subset, route module by route module, with Consul's field names, status
 * codes and headers. Errors are answered as text/plain, like Consul's; unknown routes get 404,
 * known routes with another method 405.
 *
 * Every request body is read as text whatever its content type, because Consul tools send
 * JSON with any (curl's `--data` says form-urlencoded).
 */
export function registerHttpApi(app: FastifyInstance, context: ServerContext): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));
  app.setNotFoundHandler((_request, reply) => text(reply, 404, '404 page not found'));
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode ?? 500;
    if (status < 500) return text(reply, status, error.message);
    request.log.error({ err: error }, 'request failed');
    return text(reply, 500, 'internal error');
  });
  // Before the route modules, so that every scope (KV's too) inherits the hooks.
  registerRequestTracing(app);
  registerDatacenterCheck(app, context.node.datacenter);
  registerBodyEncoding(app);
  if (context.acl !== undefined) registerAclEnforcement(app, context.acl, context.metrics?.denied);
  if (context.metrics !== undefined) registerMetricsApi(app, context, context.metrics);
  registerAclApi(app, context.acl);
  registerAgentApi(app, context);
  registerHealthApi(app, context);
  registerCatalogApi(app, context);
  registerStatusApi(app, context);
  registerKvApi(app, context);
  registerSessionApi(app, context);
  registerTxnApi(app, context);
  registerPrometheusTargets(app, context);
  registerDashboard(app, context);
}
