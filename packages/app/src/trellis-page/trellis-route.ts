import type { FastifyInstance } from 'fastify';
import type { TrellisStatus } from './trellis-status.js';

/** The path of the status page on every TrellisApp. */
export const trellisPath = '/trellis';

/**
 * Serves `GET /trellis`: the app's {@link TrellisStatus} as JSON, never cached, since it shows
 * the state of the moment.
 */
export function serveTrellisStatus(http: FastifyInstance, describe: () => TrellisStatus): void {
  http.get(trellisPath, async (_request, reply) =>
    reply.header('cache-control', 'no-store').type('application/json; charset=utf-8').send(describe()),
  );
}
