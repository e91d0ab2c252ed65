import type { FastifyInstance, FastifyReply } from 'fastify';
import { openToAll } from '../acl/route-acl.js';
import { route } from '../http/consul-http.js';
import { renderDashboardPage } from './dashboard-page.js';
import type { ServerContext } from '../http/server-context.js';

/**
 * The dashboard at `/ui/` (and `/ui`), and `/` redirecting there with a 301 as Consul does.
 * The page is rendered once, since the node it names does not change; it is sent with
 * `Cache-Control: no-store` so that a browser never shows the page of an older server version,
 * and with a Content-Security-Policy that lets only its own inline script and style run.
 * Other methods on these paths get 405; other paths under `/ui/` the usual 404.
 *
 * @example
 * registerDashboard(app, context);
 * // GET /    -> 301 Location: /ui/
 * // GET /ui/ -> 200 text/html; charset=utf-8
 */
export function registerDashboard(app: FastifyInstance, { node }: ServerContext): void {
  const page = renderDashboardPage(node);
  const servePage = async (_request: unknown, reply: FastifyReply): Promise<FastifyReply> =>
    reply
      .code(200)
      .headers({
        'Cache-Control': 'no-store',
        'Content-Security-Policy': page.contentSecurityPolicy,
        'X-Content-Type-Options': 'nosniff',
        'Referrer-Policy': 'no-referrer',
      })
      .type('text/html; charset=utf-8')
      .send(page.html);
  route(app, 'GET', '/ui', openToAll, servePage);
  route(app, 'GET', '/ui/', openToAll, servePage);
  route(app, 'GET', '/', openToAll, async (_request, reply) =>
    reply.code(301).header('Location', '/ui/').type('text/plain; charset=utf-8').send('Moved Permanently: see /ui/'),
  );
}
