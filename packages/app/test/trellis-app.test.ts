import { inject, injectable } from 'inversify';
import { ConfigError, ManualClock } from '@trellis/core';
import type { ServiceClient } from '@trellis/client';
import { MemoryRegistry, type Registry } from '@trellis/registry';
import { AppTokens, clientToken, TrellisApp } from '@trellis/app';
import { testApps } from './test-apps.js';

describe('TrellisApp', () => {
  const apps = testApps();
  const app = apps.app;

  it('listens on a free port and registers itself under its service name', async () => {
    const users = app({ service: 'users', version: '1.2.0', zone: 'a', tags: ['http'], labels: { team: 'id' } });
    const started = await users.start();
    expect(started.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const port = Number(new URL(started.url).port);
    expect(await apps.registry.list('users')).toEqual([
      {
        id: `users-127.0.0.1-${port}`,
        service: 'users',
        address: '127.0.0.1',
        port,
        tags: ['http'],
        meta: { version: '1.2.0', zone: 'a', weight: 1, labels: { team: 'id' } },
      },
    ]);
    const health = await fetch(`${started.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'UP', service: 'users', instance: `users-127.0.0.1-${port}` });
  });

  it('calls another app by its service name over HTTP', async () => {
    const users = app({ service: 'users' });
    users.http.get('/users/:id', async (req) => ({
      id: (req.params as { id: string }).id,
      servedBy: users.instance?.id,
    }));
    await users.start();
    const forum = app({ service: 'forum', calls: ['users'] });
    forum.http.get('/posts/1', async () => ({ title: 'hello', author: await forum.client('users').get('/users/7') }));
    const { url } = await forum.start();

    const post = (await (await fetch(`${url}/posts/1`)).json()) as { author: { id: string; servedBy: string } };
    expect(post.author).toEqual({ id: '7', servedBy: users.instance?.id });
  });

  it('answers a route whose dependency is unavailable with 503 and the error code', async () => {
    const forum = app({ service: 'forum', calls: ['users'] });
    forum.http.get('/posts/1', async () => forum.client('users').get('/users/1'));
    const { url } = await forum.start();
    const response = await fetch(`${url}/posts/1`);
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({
      error: 'NO_INSTANCES',
      message: 'no instance of service "users" to call: none is registered and passing its health checks',
      service: 'users',
    });
  });

  it('answers a route whose dependency answered with an error with 502', async () => {
    const users = app({ service: 'users' });
    users.http.get('/users/:id', async (_req, reply) => reply.code(404).send({ error: 'NOT_FOUND' }));
    await users.start();
    const forum = app({ service: 'forum', calls: ['users'] });
    forum.http.get('/posts/1', async () => forum.client('users').get('/users/9'));
    const { url } = await forum.start();
    const response = await fetch(`${url}/posts/1`);
    expect(response.status).toBe(502);
    expect(await response.json()).toMatchObject({ error: 'UPSTREAM_STATUS', service: 'users' });
  });

  it('governs its clients as configured: a slow dependency is cut off and answered 504 TIMEOUT', async () => {
    const users = app({ service: 'users' });
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    users.http.get('/users/:id', async () => {
      await held;
      return { id: '1' };
    });
    await users.start();
    const forum = app({ service: 'forum', calls: ['users'], client: { attemptTimeoutMs: 100, retry: false } });
    forum.http.get('/posts/1', async () => forum.client('users').get('/users/1'));
    const { url } = await forum.start();
    try {
      const response = await fetch(`${url}/posts/1`);
      expect(response.status).toBe(504);
      expect(await response.json()).toMatchObject({ error: 'TIMEOUT', service: 'users' });
      // Every client of the app shares the app's breakers, and routes as the app's service.
      expect(forum.client('users').breakers).toBe(forum.breakers);
    } finally {
      release();
    }
  });

  it('keeps Fastify’s own answers for errors that are not Trellis errors', async () => {
    const users = app({ service: 'users' });
    users.http.post('/users', { schema: { body: { type: 'object', required: ['name'] } } }, async () => 'created');
    users.http.get('/boom', async () => {
      throw new Error('secret detail');
    });
    const { url } = await users.start();
    const invalid = await fetch(`${url}/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(invalid.status).toBe(400);
    expect(((await invalid.json()) as { message: string }).message).toContain("must have required property 'name'");
    const failed = await fetch(`${url}/boom`);
    expect(failed.status).toBe(500);
    expect(await failed.json()).toEqual({ error: 'INTERNAL', message: 'internal error' });
  });

  it('injects declared service clients into user classes through its inversify container', async () => {
    @injectable()
    class Timeline {
      constructor(
        @inject(clientToken('users')) readonly users: ServiceClient,
        @inject(AppTokens.registry) readonly registry: Registry,
      ) {}
    }
    const forum = app({ service: 'forum', calls: ['users'] });
    forum.container.bind(Timeline).toSelf();
    const timeline = forum.container.get(Timeline);
    expect(timeline.users).toBe(forum.client('users'));
    expect(timeline.users.service).toBe('users');
    expect(timeline.registry).toBe(apps.registry);
    expect(forum.container.get(AppTokens.app)).toBe(forum);
  });

  it('deregisters on close, keeps serving while it drains, then refuses connections', async () => {
    const clock = new ManualClock();
    const users = app({ service: 'users', clock, drainMs: 5_000 });
    users.http.get('/ping', async () => 'pong');
    const { url } = await users.start();

    const closing = users.close();
    await new Promise((resolve) => setImmediate(resolve));
    expect(await apps.registry.list('users')).toEqual([]);
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(503);
    expect(health.headers.get('connection')).toBe('close');
    expect(await health.json()).toMatchObject({ status: 'DRAINING' });
    expect(await (await fetch(`${url}/ping`)).text()).toBe('pong');

    clock.advance(5_000);
    await closing;
    await expect(fetch(`${url}/ping`)).rejects.toThrow();
  });

  it('keeps its registration alive with heartbeats', async () => {
    const clock = new ManualClock();
    const clocked = new MemoryRegistry({ clock });
    const users = new TrellisApp({
      service: 'users',
      registry: clocked,
      clock,
      ttlMs: 3_000,
      logLevel: 'silent',
      drainMs: 0,
    });
    try {
      await users.start();
      await clock.advanceAsync(30_000);
      expect(await clocked.list('users')).toHaveLength(1);
    } finally {
      await users.close();
      await clocked.close();
    }
  });

  it('refuses invalid options with an error naming the field', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ service: '' }, 'service'],
      [{ service: 'has space' }, 'service'],
      [{ service: 'users', port: 70_000 }, 'port'],
      [{ service: 'users', port: 1.5 }, 'port'],
      [{ service: 'users', weight: -1 }, 'weight'],
      [{ service: 'users', weight: 1.5 }, 'weight'],
      [{ service: 'users', ttlMs: -1 }, 'ttlMs'],
      [{ service: 'users', drainMs: Number.NaN }, 'drainMs'],
      [{ service: 'users', logLevel: 'loud' }, 'logLevel'],
    ];
    for (const [options, field] of cases) {
      let error: unknown;
      try {
        new TrellisApp({ registry: apps.registry, ...(options as { service: string }) });
      } catch (e) {
        error = e;
      }
      expect(ConfigError.is(error) && error.field).toBe(field);
    }
  });

  it('refuses a second start and client() after close', async () => {
    const users = app({ service: 'users' });
    await users.start();
    await expect(users.start()).rejects.toThrow('called when running');
    await users.close();
    expect(() => users.client('mail')).toThrow('TrellisApp "users" is closed');
  });
});
