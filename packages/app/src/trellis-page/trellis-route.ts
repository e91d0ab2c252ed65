import type { FastifyInstance } from 'fastify';
import Negotiator from 'negotiator';
import { renderTrellisPage } from './trellis-page-files.js';
import type { TrellisStatus } from './trellis-status.js';

/** The path of the status page on every TrellisApp. */
export const trellisPath = '/trellis';

// JSON first: a client that states no preference (curl, fetch, `*/*`) gets the documented shape.
const offered = ['application/json', 'text/html'];

/**
 * Serves `GET /trellis`: the app's {@link TrellisStatus} as JSON, or, to a request that
 * prefers text/html (a browser), a page that shows it and polls it. Never cached, since it
 * shows the state of the moment.
 */
export function serveTrellisStatus(http: FastifyInstance, service: string, describe: () => TrellisStatus): void {
  // Rendered once: the only value filled in, the service name, does not change.
  const page = renderTrellisPage(service);
  if ('problem' in page) http.log.warn(`/trellis serves JSON only: ${page.problem}; run npm run build`);
  http.get(trellisPath, async (request, reply) => {
    void reply.header('cache-control', 'no-store').header('vary', 'accept');
    const wanted = new Negotiator(request).mediaType(offered);
    if (wanted === 'text/html' && !('problem' in page)) {
      return reply
        .headers({
          'content-security-policy': page.contentSecurityPolicy,
          'x-content-type-options': 'nosniff',
          'referrer-policy': 'no-referrer',
        })
        .type('text/html; charset=utf-8')
        .send(page.html);
    }
    return reply.type('application/json; charset=utf-8').send(describe());
  });
}
