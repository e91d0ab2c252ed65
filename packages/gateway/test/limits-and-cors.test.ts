import { Readable } from 'node:stream';
import { request } from 'undici';
import { ManualClock } from '@trellis/core';
import { gatewaySystem, echo, type Echoed } from './gateway-fixtures.js';

describe('limits and CORS at the gateway', () => {
  const system = gatewaySystem();

  it('answers 413 naming the limit for a body over it, declared or streamed, per route or per gateway', async () => {
    await system.service('upload', echo);
    const { url } = await system.gateway({
      bodyLimitBytes: 100,
      routes: [
        { match: { pathPrefix: '/big/' }, service: 'upload', bodyLimitBytes: 1_000 },
        { match: { pathPrefix: '/' }, service: 'upload' },
      ],
    });
    const declared = await fetch(`${url}/small`, { method: 'POST', body: 'x'.repeat(101) });
    expect(declared.status).toBe(413);
    expect(await declared.json()).toEqual({
      error: 'BODY_TOO_LARGE',
      message: "the request body is over this route's limit of 100 bytes",
      limitBytes: 100,
    });
    // Chunked, with no length to refuse it by: counted as it arrives.
    const streamed = await request(`${url}/small`, {
      method: 'POST',
      body: Readable.from(
        (function* () {
          for (let i = 0; i < 5; i++) yield Buffer.alloc(40, 'y');
        })(),
      ),
    });
    expect(streamed.statusCode).toBe(413);
    expect(((await streamed.body.json()) as { message: string }).message).toContain('100 bytes');

    const fits = await fetch(`${url}/big/upload`, { method: 'POST', body: 'z'.repeat(900) });
    expect(fits.status).toBe(200);
    expect(((await fits.json()) as Echoed).body).toBe('z'.repeat(900));
  });

  it('limits the rate per client key, answering 429 with Retry-After, a key by header apart from others', async () => {
    await system.service('api', echo);
    const clock = new ManualClock();
    const { url } = await system.gateway({
      clock,
      rateLimit: { ratePerSecond: 1, burst: 2, key: { header: 'x-api-key' } },
      routes: [
        { match: { pathPrefix: '/free/' }, service: 'api', rateLimit: false },
        { match: { pathPrefix: '/' }, service: 'api' },
      ],
    });
    const get = (path: string, key: string): Promise<Response> =>
      fetch(`${url}${path}`, { headers: { 'x-api-key': key } });
    expect((await get('/a', 'k1')).status).toBe(200);
    expect((await get('/a', 'k1')).status).toBe(200);
    const refused = await get('/a', 'k1');
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toMatchObject({ error: 'RATE_LIMITED' });
    expect((await get('/a', 'k2')).status).toBe(200);
    expect((await get('/free/a', 'k1')).status).toBe(200);
    clock.advance(1_000);
    expect((await get('/a', 'k1')).status).toBe(200);
  });

  it('answers CORS preflights and adds the allow headers for allowed origins only', async () => {
    await system.service('api', echo);
    const { url } = await system.gateway({
      cors: { origins: ['https://app.example.com'], credentials: true, exposedHeaders: ['x-served-by'] },
      routes: [
        { match: { pathPrefix: '/public/' }, service: 'api', cors: { origins: '*' } },
        { match: { pathPrefix: '/' }, service: 'api' },
      ],
    });
    const preflight = await fetch(`${url}/x`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(preflight.headers.get('access-control-allow-credentials')).toBe('true');
    expect(preflight.headers.get('access-control-allow-headers')).toBe('content-type');

    const allowed = await fetch(`${url}/x`, { headers: { origin: 'https://app.example.com' } });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(allowed.headers.get('access-control-expose-headers')).toBe('x-served-by');
    const other = await fetch(`${url}/x`, { headers: { origin: 'https://evil.example' } });
    expect(other.status).toBe(200);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const anyOrigin = await fetch(`${url}/public/x`, { headers: { origin: 'https://evil.example' } });
    expect(anyOrigin.headers.get('access-control-allow-origin')).toBe('*');
  });
});
