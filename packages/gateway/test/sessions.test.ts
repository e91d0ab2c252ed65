import type { TrellisApp } from '@trellis/app';
import { gatewaySystem, echo, type Echoed } from './gateway-fixtures.js';

// The session service: token "t-ann" is Ann's; it counts the checks it answers.
function sessions(checks: string[]): (app: TrellisApp) => void {
  return (app) => {
    app.http.get<{ Params: { token: string } }>('/sessions/:token', async (request, reply) => {
      checks.push(request.params.token);
      if (request.params.token !== 't-ann') return reply.code(404).send({ error: 'NO_SESSION', message: 'none' });
      return { user: { id: 'u-1', name: 'ann' } };
    });
  };
}

describe('sessions checked at the gateway', () => {
  const system = gatewaySystem();
  const auth = { service: 'users', path: '/sessions/{token}' };
  const routes = [
    { match: { pathPrefix: '/api/mail/' }, service: 'mail', stripPrefix: true, auth: 'required' as const },
    { match: { pathPrefix: '/api/forum/' }, service: 'forum', stripPrefix: true, auth: 'optional' as const },
    { match: { pathPrefix: '/open/' }, service: 'forum', stripPrefix: true },
  ];

  it('sets x-user-id and x-user-name from a valid Bearer token or session cookie, and ignores those a client sent', async () => {
    await system.service('users', sessions([]));
    await system.service('mail', echo);
    await system.service('forum', echo);
    const { url } = await system.gateway({ auth, routes });
    const hostile = { 'x-user-id': 'u-admin', 'x-user-name': 'admin' };

    const bearer = (await (
      await fetch(`${url}/api/mail/inbox`, { headers: { ...hostile, authorization: 'Bearer t-ann' } })
    ).json()) as Echoed;
    expect(bearer.headers['x-user-id']).toBe('u-1');
    expect(bearer.headers['x-user-name']).toBe('ann');

    const cookie = (await (
      await fetch(`${url}/api/forum/threads`, { headers: { ...hostile, cookie: 'theme=dark; session=t-ann' } })
    ).json()) as Echoed;
    expect(cookie.headers['x-user-id']).toBe('u-1');

    // Optional without a session, and a route without auth: the client's identity headers are dropped all the same.
    for (const path of ['/api/forum/threads', '/open/threads']) {
      const anonymous = (await (await fetch(`${url}${path}`, { headers: hostile })).json()) as Echoed;
      expect(anonymous.headers['x-user-id']).toBeUndefined();
      expect(anonymous.headers['x-user-name']).toBeUndefined();
    }
  });

  it('answers 401 on a required route without a valid session, and goes on without identity on an optional one', async () => {
    await system.service('users', sessions([]));
    await system.service('mail', echo);
    await system.service('forum', echo);
    const { url } = await system.gateway({ auth, routes });
    const refused = await fetch(`${url}/api/mail/inbox`, { headers: { authorization: 'Bearer t-nobody' } });
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ error: 'UNAUTHENTICATED' });
    expect((await fetch(`${url}/api/mail/inbox`)).status).toBe(401);
    const optional = await fetch(`${url}/api/forum/x`, { headers: { authorization: 'Bearer t-nobody' } });
    expect(optional.status).toBe(200);
  });

  it('answers 503 saying the session check is unavailable when users is down, for a required route only', async () => {
    await system.service('mail', echo);
    await system.service('forum', echo);
    const { url } = await system.gateway({ auth, routes });
    const required = await fetch(`${url}/api/mail/inbox`, { headers: { authorization: 'Bearer t-ann' } });
    expect(required.status).toBe(503);
    const body = (await required.json()) as { error: string; message: string };
    expect(body.error).toBe('AUTH_UNAVAILABLE');
    expect(body.message).toContain('"users"');
    const optional = await fetch(`${url}/api/forum/x`, { headers: { authorization: 'Bearer t-ann' } });
    expect(optional.status).toBe(200);
    expect(((await optional.json()) as Echoed).headers['x-user-id']).toBeUndefined();
  });

  it('remembers a valid session for a few seconds on its clock, then asks again', async () => {
    const checks: string[] = [];
    await system.service('users', sessions(checks));
    await system.service('mail', echo);
    const clock = new (await import('@trellis/core')).ManualClock();
    const { url } = await system.gateway({ auth: { ...auth, cacheMs: 5_000 }, routes, clock });
    const get = (): Promise<Response> => fetch(`${url}/api/mail/inbox`, { headers: { authorization: 'Bearer t-ann' } });
    expect((await get()).status).toBe(200);
    expect((await get()).status).toBe(200);
    expect(checks).toEqual(['t-ann']);
    clock.advance(5_001);
    expect((await get()).status).toBe(200);
    expect(checks).toEqual(['t-ann', 't-ann']);
  });
});
