import { inject, injectable } from 'inversify';
import { ConfigError, ManualClock, UpstreamStatusError, type Clock } from '@trellis/core';
import {
  Body,
  CircuitBreaker,
  Client,
  Fallback,
  Get,
  Header,
  Param,
  Post,
  Query,
  remoteCall,
  Req,
  Retry,
  Signal,
  Timeout,
  TrellisApp,
} from '@trellis/app';
import { testApps } from './test-apps.js';

interface Echo {
  readonly id: string;
  readonly query: Record<string, unknown>;
  readonly header: string | undefined;
  readonly body?: unknown;
}

@Client('users')
class UsersClient {
  @Get('/users/:id')
  user(
    @Param('id') id: string,
    @Query('fields') fields?: string[],
    @Header('X-Caller') caller?: string,
  ): Promise<Echo> {
    return remoteCall(id, fields, caller);
  }

  @Post('/users/:id/notes')
  note(@Param('id') id: string, @Body() note: { text: string }): Promise<Echo> {
    return remoteCall(id, note);
  }

  @Get('/flaky')
  flaky(): Promise<unknown> {
    return remoteCall();
  }

  @Get('/flaky')
  @Retry(false)
  flakyOnce(): Promise<unknown> {
    return remoteCall();
  }

  @Get('/slow')
  @Timeout(50)
  slow(): Promise<unknown> {
    return remoteCall();
  }

  @Get('/slow')
  slowUntil(@Signal() signal: AbortSignal): Promise<unknown> {
    return remoteCall(signal);
  }

  @Get('/users/:id')
  @Fallback((cause, [id]) => ({ id, fallback: cause.code }))
  userOrPlaceholder(@Param('id') id: string): Promise<{ id: string; fallback?: string }> {
    return remoteCall(id);
  }

  @Get('/broken')
  @Retry(false)
  @CircuitBreaker({ minimumCalls: 2, failureRateThreshold: 0.5, resetTimeoutMs: 60_000 })
  broken(): Promise<unknown> {
    return remoteCall();
  }
}

describe('declarative clients', () => {
  const apps = testApps();
  const app = apps.app;
  const hits = new Map<string, number>();
  let slowArrived: () => void = () => undefined;

  async function startUsers(): Promise<TrellisApp> {
    const users = app({ service: 'users' });
    const count = (route: string): void => void hits.set(route, (hits.get(route) ?? 0) + 1);
    users.http.get<{ Params: { id: string } }>('/users/:id', async (request) => ({
      id: request.params.id,
      query: request.query,
      header: request.headers['x-caller'],
    }));
    users.http.post<{ Params: { id: string } }>('/users/:id/notes', async (request) => ({
      id: request.params.id,
      query: {},
      header: undefined,
      body: request.body,
    }));
    users.http.get('/flaky', async (_request, reply) => {
      count('flaky');
      return reply.code(503).send({ error: 'BUSY' });
    });
    users.http.get('/broken', async (_request, reply) => {
      count('broken');
      return reply.code(500).send({ error: 'BROKEN' });
    });
    users.http.get('/slow', async (request) => {
      slowArrived();
      // Answers when the caller gives up, so that the server never holds the test open.
      await new Promise((resolve) => request.raw.once('close', resolve));
      return {};
    });
    await users.start();
    return users;
  }

  async function forum(clock?: Clock): Promise<UsersClient> {
    const created = app({ service: 'forum', clients: [UsersClient], ...(clock === undefined ? {} : { clock }) });
    await created.start();
    return created.container.get(UsersClient);
  }

  beforeEach(() => {
    hits.clear();
  });

  it('sends path parameters encoded, query parameters, headers and the body, and resolves to the decoded answer', async () => {
    await startUsers();
    const users = await forum();
    expect(await users.user('a b/c', ['name', 'email'], 'forum')).toEqual({
      id: 'a b/c',
      query: { fields: ['name', 'email'] },
      header: 'forum',
    });
    expect(await users.user('7')).toEqual({ id: '7', query: {}, header: undefined });
    expect(await users.note('7', { text: 'hi' })).toMatchObject({ id: '7', body: { text: 'hi' } });
  });

  it('labels its calls with the route template, never the path', async () => {
    await startUsers();
    const created = app({ service: 'forum', clients: [UsersClient] });
    await created.start();
    await created.container.get(UsersClient).user('42');
    const text = await created.metrics?.registry.metrics();
    expect(text).toMatch(/http_client_request_duration_seconds_count\{[^}]*route="\/users\/:id"/);
    expect(text).not.toContain('/users/42');
  });

  it('is injected by the container into the classes that need it', async () => {
    await startUsers();
    @injectable()
    class Timeline {
      constructor(@inject(UsersClient) readonly users: UsersClient) {}
    }
    const created = app({ service: 'forum', clients: [UsersClient] });
    created.container.bind(Timeline).toSelf();
    await created.start();
    const timeline = created.container.get(Timeline);
    expect(timeline.users).toBeInstanceOf(UsersClient);
    expect((await timeline.users.user('1')).id).toBe('1');
    // Its service is called as if it were declared in `calls`.
    expect(created.describe().clients.map((c) => c.service)).toEqual(['users']);
  });

  it('throws the typed error of a failed call: the status and body of a non-2xx answer', async () => {
    await startUsers();
    const users = await forum();
    const error = await users.flakyOnce().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UpstreamStatusError);
    expect(error).toMatchObject({ code: 'UPSTREAM_STATUS', status: 503, body: { error: 'BUSY' }, service: 'users' });
  });

  it('retries through the stack by default and makes one attempt with @Retry(false)', async () => {
    await startUsers();
    const users = await forum();
    await expect(users.flaky()).rejects.toBeInstanceOf(UpstreamStatusError);
    const retried = hits.get('flaky') ?? 0;
    expect(retried).toBeGreaterThan(1);
    await expect(users.flakyOnce()).rejects.toBeInstanceOf(UpstreamStatusError);
    expect(hits.get('flaky')).toBe(retried + 1);
  });

  it('abandons a call after its @Timeout, read from the app clock', async () => {
    await startUsers();
    const clock = new ManualClock();
    const users = await forum(clock);
    const arrived = new Promise<void>((resolve) => (slowArrived = resolve));
    const call = users.slow().catch((e: unknown) => e);
    await arrived;
    clock.advance(50);
    expect(await call).toMatchObject({ code: 'TIMEOUT' });
  });

  it('cancels a call when its @Signal aborts', async () => {
    await startUsers();
    const users = await forum();
    const arrived = new Promise<void>((resolve) => (slowArrived = resolve));
    const controller = new AbortController();
    const call = users.slowUntil(controller.signal).catch((e: unknown) => e);
    await arrived;
    controller.abort(new Error('caller left'));
    // Rejected at once: without the signal, it would wait for the 10 s attempt timeout.
    expect(await call).toBeInstanceOf(Error);
  });

  it('answers with its @Fallback, made from the cause and the arguments, when the service is unavailable', async () => {
    const users = await forum();
    expect(await users.userOrPlaceholder('9')).toEqual({ id: '9', fallback: 'NO_INSTANCES' });
    // Without a fallback, the typed error reaches the caller.
    await expect(users.user('9')).rejects.toMatchObject({ code: 'NO_INSTANCES' });
  });

  it('answers with its @Fallback for a 5xx, but a 4xx is an answer and reaches the caller', async () => {
    await startUsers();
    @Client('users')
    class Guarded {
      @Get('/flaky')
      @Retry(false)
      @Fallback((cause) => ({ fallback: cause.code }))
      flaky(): Promise<unknown> {
        return remoteCall();
      }

      @Get('/missing')
      @Fallback(() => 'never')
      missing(): Promise<unknown> {
        return remoteCall();
      }
    }
    const created = app({ service: 'forum', clients: [Guarded] });
    await created.start();
    const guarded = created.container.get(Guarded);
    expect(await guarded.flaky()).toEqual({ fallback: 'UPSTREAM_STATUS' });
    await expect(guarded.missing()).rejects.toMatchObject({ code: 'UPSTREAM_STATUS', status: 404 });
  });

  it('opens the breaker of a method with @CircuitBreaker at its own thresholds, not the app’s', async () => {
    await startUsers();
    const users = await forum();
    await expect(users.broken()).rejects.toBeInstanceOf(UpstreamStatusError);
    await expect(users.broken()).rejects.toBeInstanceOf(UpstreamStatusError);
    // Two failures of two calls open it: the third is refused without reaching users.
    await expect(users.broken()).rejects.toMatchObject({ code: 'CIRCUIT_OPEN' });
    expect(hits.get('broken')).toBe(2);
    // The app's own breakers (for the other methods) saw none of it.
    expect((await users.user('1')).id).toBe('1');
  });

  it('finds a mistake in the decorators when the client is made, naming the method', async () => {
    @Client('users')
    class MissingParam {
      @Get('/users/:id')
      user(): Promise<unknown> {
        return remoteCall();
      }
    }
    @Client('users')
    class WithReq {
      @Get('/users')
      all(@Req() request: unknown): Promise<unknown> {
        return remoteCall(request);
      }
    }
    const created = app({ service: 'forum', clients: [MissingParam, WithReq] });
    expect(() => created.container.get(MissingParam)).toThrow(/MissingParam\.user.*":id" but no @Param\('id'\)/);
    expect(() => created.container.get(WithReq)).toThrow(/WithReq\.all.*@Req\(\) is for controllers/);
    class Plain {}
    expect(() => app({ service: 'forum', clients: [Plain] })).toThrow(ConfigError);
    expect(() => app({ service: 'forum', clients: [Plain] })).toThrow(/clients\[0\].*@Client/);
  });

  it('sends nothing when made with new instead of taken from the container', async () => {
    await expect(new UsersClient().user('1')).rejects.toThrow(/take it from the app container/);
  });
});
