import type { FastifyInstance, FastifyReply } from 'fastify';
import { openToAll } from '../acl/route-acl.js';
import { route, text } from '../http/consul-http.js';
import { loadDashboardFiles, renderDashboardPage } from './dashboard-page.js';
import type { ServerContext } from '../http/server-context.js';

/**
 * The dashboard at `/ui/` (and `/ui`), its icon at `/ui/favicon.svg`, and `/` redirecting to
 * `/ui/` with a 301 as Consul does. The page's files are read once per process and the page is
 * rendered once per server, since the node it names does not change; it is sent with
 * `Cache-Control: no-store` so that a browser never shows the page of an older server version,
 * and with a Content-Security-Policy that lets only its own inline script and style run.
 * Other methods on these paths get 405; other paths under `/ui/` the usual 404. Without its
 * built files (run from source before a build) the page is a 503 saying so, and the API works.
 *
 * @example
 * registerDashboard(app, context);
 * // GET /    -> 301 Location: /ui/
 * // GET /ui/ -> 200 text/html; charset=utf-8
 */
export function registerDashboard(app: FastifyInstance, { node }: ServerContext): void {
  const files = loadDashboardFiles();
  let servePage: (_request: unknown, reply: FastifyReply) => Promise<FastifyReply>;
  if ('files' in files) {
    const page = renderDashboardPage(files.files, node);
    servePage = async (_request, reply) =>
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
    const favicon = files.files.favicon;
    route(app, 'GET', '/ui/favicon.svg', openToAll, async (_request, reply) =>
      reply
        .code(200)
        .headers({
          'Cache-Control': 'max-age=3600',
          // Opened on its own, an SVG is a document: it may run nothing.
          'Content-Security-Policy': "default-src 'none'",
          'X-Content-Type-Options': 'nosniff',
        })
        .type('image/svg+xml')
        .send(favicon),
    );
  } else {
    const problem = files.problem;
    app.log.warn(`dashboard unavailable: ${problem}`);
    servePage = async (_request, reply) =>
      text(reply.header('Cache-Control', 'no-store'), 503, `dashboard unavailable: ${problem}; run npm run build`);
  }
  route(app, 'GET', '/ui', openToAll, servePage);
  route(app, 'GET', '/ui/', openToAll, servePage);
  route(app, 'GET', '/', openToAll, async (_request, reply) =>
    reply.code(301).header('Location', '/ui/').type('text/plain; charset=utf-8').send('Moved Permanently: see /ui/'),
  );
}
