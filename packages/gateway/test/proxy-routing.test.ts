import { request } from 'undici';
import { gatewaySystem, echo, type Echoed } from './gateway-fixtures.js';

describe('the gateway routes requests to services through their governed clients', () => {
  const system = gatewaySystem();

  it('matches by path prefix, first match wins, strips or rewrites the prefix, and says which instance served', async () => {
    const users = await system.service('users', echo);
    await system.service('forum', echo);
    const { url } = await system.gateway({
      routes: [
        { name: 'users-api', match: { pathPrefix: '/api/users/' }, service: 'users', stripPrefix: true },
        { name: 'forum-v1', match: { pathPrefix: '/v1/forum/' }, service: 'forum', rewritePrefix: '/forum/' },
        { name: 'forum', match: { pathPrefix: '/' }, service: 'forum' },
      ],
    });

    const stripped = await fetch(`${url}/api/users/42?fields=name`);
    expect(stripped.status).toBe(200);
    expect(stripped.headers.get('x-served-by')).toBe(users.instance?.id);
    const body = (await stripped.json()) as Echoed;
    expect(body).toMatchObject({ service: 'users', url: '/42?fields=name' });
    expect(body.headers['x-forwarded-prefix']).toBe('/api/users');

    const rewritten = (await (await fetch(`${url}/v1/forum/threads/7`)).json()) as Echoed;
    expect(rewritten).toMatchObject({ service: 'forum', url: '/forum/threads/7' });
    expect(rewritten.headers['x-forwarded-prefix']).toBe('/v1/forum');

    const asIs = (await (await fetch(`${url}/boards`)).json()) as Echoed;
    expect(asIs).toMatchObject({ service: 'forum', url: '/boards' });
    expect(asIs.headers['x-forwarded-prefix']).toBeUndefined();
  });

  it('matches by host and by header (exact value or regex)', async () => {
    await system.service('canary', echo);
    await system.service('stable', echo);
    await system.service('admin', echo);
    const { url } = await system.gateway({
      routes: [
        { match: { host: 'admin.example.com' }, service: 'admin' },
        { match: { pathPrefix: '/', header: { name: 'X-Canary', value: 'yes' } }, service: 'canary' },
        { match: { pathPrefix: '/', header: { name: 'user-agent', regex: '^canary-bot/' } }, service: 'canary' },
        { match: { pathPrefix: '/' }, service: 'stable' },
      ],
    });
    // undici, not fetch: fetch does not let a caller set Host.
    const serviceOf = async (headers: Record<string, string>): Promise<string> =>
      ((await (await request(`${url}/x`, { headers })).body.json()) as Echoed).service;
    expect(await serviceOf({ host: 'ADMIN.example.com:8080' })).toBe('admin');
    expect(await serviceOf({ 'x-canary': 'yes' })).toBe('canary');
    expect(await serviceOf({ 'x-canary': 'no' })).toBe('stable');
    expect(await serviceOf({ 'user-agent': 'canary-bot/1.0' })).toBe('canary');
    expect(await serviceOf({})).toBe('stable');
  });

  it('answers 404 NO_ROUTE in the app error shape when no route matches, and never routes its own pages', async () => {
    await system.service('users', echo);
    const { url } = await system.gateway({
      routes: [{ match: { pathPrefix: '/api/' }, service: 'users' }],
    });
    const missing = await fetch(`${url}/nowhere?x=1`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'NO_ROUTE', message: 'no route matches GET /nowhere' });
    expect(((await (await fetch(`${url}/health`)).json()) as { service: string }).service).toBe('gateway');
    expect((await fetch(`${url}/gateway.json`)).status).toBe(200);
  });

  it('sets X-Forwarded-For, -Proto and -Host, and drops hop-by-hop headers both ways', async () => {
    await system.service('users', (app) => {
      app.http.get('/hop', async (request, reply) =>
        reply
          .header('connection', 'x-hop')
          .header('x-hop', 'named by Connection')
          .header('keep-alive', 'timeout=5')
          .header('proxy-authenticate', 'Basic')
          .header('x-kept', 'yes')
          .send({
            headers: request.headers,
          }),
      );
    });
    const { url } = await system.gateway({ routes: [{ match: { pathPrefix: '/' }, service: 'users' }] });
    const answer = await fetch(`${url}/hop`, {
      headers: {
        'x-forwarded-for': '203.0.113.9',
        te: 'trailers',
        'proxy-authorization': 'Basic eA==',
        'x-other': '1',
      },
    });
    expect(answer.headers.get('x-kept')).toBe('yes');
    expect(answer.headers.get('proxy-authenticate')).toBeNull();
    expect(answer.headers.get('x-hop')).toBeNull();
    expect(answer.headers.get('keep-alive')).not.toBe('timeout=5');
    const { headers } = (await answer.json()) as { headers: Record<string, string> };
    expect(headers['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
    expect(headers['x-forwarded-proto']).toBe('http');
    expect(headers['x-forwarded-host']).toBe(new URL(url).host);
    expect(headers['x-other']).toBe('1');
    expect(headers.te).toBeUndefined();
    expect(headers['proxy-authorization']).toBeUndefined();
  });

  it('passes bodies, statuses, content types and cookies through untouched', async () => {
    const html = '<!doctype html><p>caf\u00e9 &amp; <b>bold</b></p>';
    await system.service('pages', (app) => {
      app.http.get('/', async (_request, reply) =>
        reply
          .code(203)
          .type('text/html; charset=utf-8')
          .header('set-cookie', ['a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT', 'b=2'])
          .send(html),
      );
      app.http.post('/echo', async (request, reply) => reply.code(201).send(request.body));
    });
    const { url } = await system.gateway({ routes: [{ match: { pathPrefix: '/' }, service: 'pages' }] });
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(203);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.getSetCookie()).toEqual(['a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT', 'b=2']);
    expect(await page.text()).toBe(html);
    // A HEAD keeps the instance's length, though no body comes.
    const head = await fetch(`${url}/`, { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe(String(Buffer.byteLength(html)));
    const posted = await fetch(`${url}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"text":  "kept as sent"}',
    });
    expect(posted.status).toBe(201);
    expect(await posted.json()).toEqual({ text: 'kept as sent' });
  });
});
