import type { TrellisApp } from '@trellis/app';
import { gatewaySystem } from './gateway-fixtures.js';

// An instance that fails every request with a 500, counting those it received.
function failing(received: string[]): (app: TrellisApp) => void {
  return (app) => {
    app.http.get('/*', async (request, reply) => {
      received.push(request.url);
      return reply.code(500).send({ error: 'BROKEN', message: 'always' });
    });
  };
}

describe('per-route policies, each a client of its own', () => {
  const system = gatewaySystem();

  it('opens a route’s own breaker on its own thresholds, while a route with the shared breakers still calls', async () => {
    const received: string[] = [];
    await system.service('flaky', failing(received));
    const { url } = await system.gateway({
      routes: [
        {
          match: { pathPrefix: '/strict/' },
          service: 'flaky',
          stripPrefix: true,
          retry: false,
          breaker: { minimumCalls: 2, failureRateThreshold: 0.5, resetTimeoutMs: 60_000 },
        },
        { match: { pathPrefix: '/' }, service: 'flaky', retry: false },
      ],
    });
    expect((await fetch(`${url}/strict/a`)).status).toBe(500);
    expect((await fetch(`${url}/strict/b`)).status).toBe(500);
    const refused = await fetch(`${url}/strict/c`);
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ error: 'CIRCUIT_OPEN' });
    expect(received).toEqual(['/a', '/b']);
    // The other route's client has the gateway's shared breakers, far from their thresholds.
    expect((await fetch(`${url}/d`)).status).toBe(500);
    expect(received).toEqual(['/a', '/b', '/d']);
  });

  it('gives up a route’s call at its timeoutMs with 504', async () => {
    await system.service('slow', (app) => {
      app.http.get('/*', () => new Promise(() => undefined));
    });
    const { url } = await system.gateway({
      routes: [{ match: { pathPrefix: '/' }, service: 'slow', timeoutMs: 200, retry: false }],
    });
    const answer = await fetch(`${url}/x`);
    expect(answer.status).toBe(504);
    expect(await answer.json()).toMatchObject({ error: 'TIMEOUT' });
  });
});
