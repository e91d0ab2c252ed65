import { inject, injectable } from 'inversify';
import { z } from 'zod';
import type { FastifyRequest } from 'fastify';
import { ConfigError, NoInstancesError } from '@trellis/core';
import {
  AppTokens,
  Body,
  Client,
  Controller,
  Delete,
  Get,
  Header,
  Headers,
  HttpError,
  Param,
  Patch,
  Post,
  Put,
  Query,
  RateLimit,
  remoteCall,
  Req,
  Signal,
  TrellisApp,
} from '@trellis/app';
import { testApps } from './test-apps.js';

interface User {
  readonly id: number;
  readonly name: string;
}

@injectable()
class UserStore {
  readonly users = new Map<number, User>([[7, { id: 7, name: 'Ada' }]]);
}

let built = 0;

@Controller('/users')
class UsersController {
  constructor(
    private readonly store: UserStore,
    @inject(AppTokens.app) private readonly app: TrellisApp,
  ) {
    built++;
  }

  @Get('/:id')
  one(@Param('id', z.coerce.number().int()) id: number): User {
    const user = this.store.users.get(id);
    if (user === undefined) throw new HttpError(404, 'USER_NOT_FOUND', `no user ${id}`);
    return user;
  }

  @Get()
  list(@Query('limit', z.coerce.number().default(10)) limit: number, @Query() query: unknown): unknown {
    return { limit, limitType: typeof limit, query, served: this.app.service };
  }

  @Post()
  async add(@Body(z.object({ name: z.string().min(1) })) body: { name: string }): Promise<User> {
    await Promise.resolve();
    if ([...this.store.users.values()].some((u) => u.name === body.name)) {
      throw new HttpError(400, 'NAME_TAKEN', `body "name": "${body.name}" is taken`, { field: 'body.name' });
    }
    const user = { id: this.store.users.size + 100, name: body.name };
    this.store.users.set(user.id, user);
    return user;
  }

  @Put('/:id')
  replace(@Param() params: unknown, @Body() body: unknown, @Header('x-user') user: string | undefined): unknown {
    return { params, body, user };
  }

  @Patch('/:id')
  patch(
    @Headers() headers: Record<string, unknown>,
    @Req() request: FastifyRequest,
    @Signal() signal: AbortSignal,
  ): unknown {
    return {
      accept: headers['accept-language'],
      route: request.routeOptions.url,
      signalIsTheRequests: signal === request.inbound.signal,
      aborted: signal.aborted,
    };
  }

  @Delete('/:id')
  remove(@Param('id', z.coerce.number()) id: number): void {
    this.store.users.delete(id);
  }

  @Get('/:id/friends')
  friends(): never {
    // A dependency was not there: the app's mapping of Trellis errors applies, as on any route.
    throw new NoInstancesError('friends');
  }

  @Get('/:id/crash')
  crash(): never {
    throw new Error('a bug, with a secret in its message');
  }

  // No verb: not a route.
  helper(): string {
    return 'not served';
  }
}

@Controller()
class RootController {
  @Get()
  root(): unknown {
    return { root: true };
  }
}

describe('controllers served by a TrellisApp', () => {
  const apps = testApps();
  const app = apps.app;

  beforeEach(() => {
    built = 0;
  });

  it('resolves a controller once from the container, with its dependencies, and serves its methods as routes', async () => {
    const users = app({ controllers: [UsersController, RootController] });
    users.container.bind(UserStore).toSelf().inSingletonScope();
    const { url } = await users.start();

    const one = await fetch(`${url}/users/7`);
    expect(one.status).toBe(200);
    expect(one.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await one.json()).toEqual({ id: 7, name: 'Ada' });
    const added = await fetch(`${url}/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Grace' }),
    });
    expect(await added.json()).toEqual({ id: 101, name: 'Grace' });
    expect(await (await fetch(`${url}/users/101`)).json()).toEqual({ id: 101, name: 'Grace' });
    expect(await (await fetch(`${url}/`)).json()).toEqual({ root: true });
    expect(built).toBe(1);
    expect(users.container.get(UsersController)).toBe(users.container.get(UsersController));
    expect((await fetch(`${url}/users/7/helper`)).status).toBe(404);
  });

  it('injects a declarative client into a controller, whose calls reach another app by its service name', async () => {
    @Client('users')
    class UsersClient {
      @Get('/users/:id')
      user(@Param('id') id: string): Promise<User> {
        return remoteCall(id);
      }
    }
    @Controller('/posts')
    class PostsController {
      constructor(@inject(UsersClient) private readonly users: UsersClient) {}

      @Get('/:id')
      async one(@Param('id') id: string): Promise<unknown> {
        return { id, author: await this.users.user('7') };
      }
    }
    const users = app({ controllers: [UsersController] });
    users.container.bind(UserStore).toSelf();
    await users.start();
    const forum = app({ service: 'forum', clients: [UsersClient], controllers: [PostsController] });
    const { url } = await forum.start();
    expect(await (await fetch(`${url}/posts/1`)).json()).toEqual({ id: '1', author: { id: 7, name: 'Ada' } });
  });

  it('uses the binding the user made of a controller instead of making its own', async () => {
    const users = app({ controllers: [UsersController] });
    const store = new UserStore();
    store.users.set(1, { id: 1, name: 'Bound by hand' });
    users.container.bind(UsersController).toConstantValue(new UsersController(store, users));
    const { url } = await users.start();
    expect(await (await fetch(`${url}/users/1`)).json()).toEqual({ id: 1, name: 'Bound by hand' });
  });

  it('hands each parameter from its place: path, query, body, one header, all headers, the request and its signal', async () => {
    const users = app({ controllers: [UsersController] });
    users.container.bind(UserStore).toSelf();
    const { url } = await users.start();

    // Coerced and defaulted by the schema: the method gets numbers.
    expect(await (await fetch(`${url}/users?limit=3&sort=name`)).json()).toEqual({
      limit: 3,
      limitType: 'number',
      query: { limit: '3', sort: 'name' },
      served: 'users',
    });
    expect(await (await fetch(`${url}/users`)).json()).toMatchObject({ limit: 10, limitType: 'number' });
    const replaced = await fetch(`${url}/users/7`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'x-user': 'ada' },
      body: JSON.stringify({ name: 'Ada L.' }),
    });
    expect(await replaced.json()).toEqual({ params: { id: '7' }, body: { name: 'Ada L.' }, user: 'ada' });
    const patched = await fetch(`${url}/users/7`, { method: 'PATCH', headers: { 'accept-language': 'fr' } });
    expect(await patched.json()).toEqual({
      accept: 'fr',
      route: '/users/:id',
      signalIsTheRequests: true,
      aborted: false,
    });
  });

  it('answers 204 with no body for a method that returns nothing, and sends every answer once', async () => {
    const lines: string[] = [];
    const users = app({
      controllers: [UsersController],
      logLevel: 'warn',
      logDestination: { write: (l) => lines.push(l) },
    });
    users.container.bind(UserStore).toSelf().inSingletonScope();
    const { url } = await users.start();
    const removed = await fetch(`${url}/users/7`, { method: 'DELETE' });
    expect(removed.status).toBe(204);
    expect(await removed.text()).toBe('');
    expect((await fetch(`${url}/users/7`)).status).toBe(404);
    expect((await fetch(`${url}/users/x`)).status).toBe(400);
    expect((await fetch(`${url}/users`, { method: 'POST' })).status).toBe(400);
    // Fastify warns when a handler's answer comes after one was sent: none of these did.
    expect(lines.filter((l) => l.includes('FST_ERR_REP_ALREADY_SENT') || l.includes('already sent'))).toEqual([]);
  });

  it('answers an HttpError with its status, code and field, a Trellis error by its code, and a bug with 500 and no detail', async () => {
    const users = app({ controllers: [UsersController] });
    users.container.bind(UserStore).toSelf();
    const { url } = await users.start();

    const missing = await fetch(`${url}/users/8`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'USER_NOT_FOUND', message: 'no user 8' });
    const unavailable = await fetch(`${url}/users/7/friends`);
    expect(unavailable.status).toBe(503);
    expect(await unavailable.json()).toMatchObject({ error: 'NO_INSTANCES', service: 'friends' });
    // A verdict about one input names it as the schemas' 400s do.
    const taken = await fetch(`${url}/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Ada' }),
    });
    expect(taken.status).toBe(400);
    expect(await taken.json()).toEqual({
      error: 'NAME_TAKEN',
      message: 'body "name": "Ada" is taken',
      field: 'body.name',
    });
    const crashed = await fetch(`${url}/users/7/crash`);
    expect(crashed.status).toBe(500);
    expect(await crashed.json()).toEqual({ error: 'INTERNAL', message: 'internal error' });
  });

  it('refuses a controllers option that is not a list of @Controller classes, naming the entry', () => {
    class Plain {}
    const make = (controllers: unknown): unknown =>
      new TrellisApp({ service: 'users', registry: apps.registry, logLevel: 'silent', controllers: controllers as [] });
    expect(() => make([UsersController, Plain])).toThrow(ConfigError);
    expect(() => make([UsersController, Plain])).toThrow(
      'invalid configuration "controllers[1]": must be a class decorated with @Controller(prefix), got class Plain',
    );
    expect(() => make([RootController, 'users'])).toThrow('"controllers[1]"');
    expect(() => make(UsersController)).toThrow('"controllers"');
  });

  it('refuses at start a @Param that its path does not have', async () => {
    @Controller('/posts')
    class PostsController {
      @Get('/:id')
      one(@Param('postId') postId: string): string {
        return postId;
      }
    }
    const posts = app({ service: 'posts', controllers: [PostsController] });
    await expect(posts.start()).rejects.toThrow(
      'invalid configuration "PostsController.one": @Param("postId") is not a parameter of the path "/posts/:id"',
    );
  });

  it('refuses at start a policy out of range, naming the method and the option', async () => {
    @Controller('/posts')
    class PostsController {
      @Get()
      @RateLimit({ ratePerSecond: 0 })
      all(): unknown {
        return [];
      }
    }
    const posts = app({ service: 'posts', controllers: [PostsController] });
    await expect(posts.start()).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
      field: 'PostsController.all.rateLimit.ratePerSecond',
    });
  });

  it('refuses HttpError statuses that are not errors', () => {
    expect(() => new HttpError(302, 'MOVED', 'elsewhere')).toThrow('"HttpError.status"');
    expect(HttpError.is(new HttpError(409, 'CONFLICT', 'taken'))).toBe(true);
    expect(HttpError.is(new Error('x'))).toBe(false);
  });
});
