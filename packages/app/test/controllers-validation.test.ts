import { z } from 'zod';
import { MemoryRegistry } from '@trellis/registry';
import { Body, Controller, Get, Header, Headers, Param, Post, Query, TrellisApp } from '@trellis/app';

const ran: string[] = [];

@Controller('/posts')
class PostsController {
  @Get('/:id')
  one(@Param('id', z.string().regex(/^\d+$/, 'must be digits')) id: string): unknown {
    ran.push('one');
    return { id };
  }

  @Get()
  page(@Query('page', z.coerce.number().int().min(1)) page: number): unknown {
    ran.push('page');
    return { page };
  }

  @Post()
  add(
    @Body(
      z.strictObject({
        title: z.string().min(3, 'must have at least 3 characters'),
        tags: z.array(z.string()).default([]),
      }),
    )
    body: unknown,
  ): unknown {
    ran.push('add');
    return body;
  }

  @Get('/mine/all')
  mine(@Header('x-user', z.string().uuid('must be a UUID')) user: string): unknown {
    ran.push('mine');
    return { user };
  }

  @Get('/mine/lang')
  lang(@Headers(z.looseObject({ 'accept-language': z.enum(['en', 'fr']) })) headers: unknown): unknown {
    ran.push('lang');
    return headers;
  }
}

describe('controller parameters checked by their schemas', () => {
  let registry: MemoryRegistry;
  let app: TrellisApp;
  let url: string;

  beforeAll(async () => {
    registry = new MemoryRegistry();
    app = new TrellisApp({
      service: 'posts',
      registry,
      logLevel: 'silent',
      drainMs: 0,
      controllers: [PostsController],
    });
    ({ url } = await app.start());
  });
  afterAll(async () => {
    await app.close();
    await registry.close();
  });
  beforeEach(() => {
    ran.length = 0;
  });

  async function answer(path: string, init?: RequestInit): Promise<{ status: number; body: unknown }> {
    const response = await fetch(`${url}${path}`, init);
    return { status: response.status, body: await response.json() };
  }
  const post = (body: unknown): RequestInit => ({
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

  it('answers 400 naming a path parameter, and never runs the method', async () => {
    expect(await answer('/posts/abc')).toEqual({
      status: 400,
      body: { error: 'INVALID_REQUEST', message: 'path parameter "id": must be digits', field: 'params.id' },
    });
    expect(ran).toEqual([]);
    expect(await answer('/posts/12')).toEqual({ status: 200, body: { id: '12' } });
    expect(ran).toEqual(['one']);
  });

  it('answers 400 naming a query parameter, a missing one included', async () => {
    const zero = await answer('/posts?page=0');
    expect(zero.status).toBe(400);
    expect(zero.body).toMatchObject({ error: 'INVALID_REQUEST', field: 'query.page' });
    expect((zero.body as { message: string }).message).toMatch(/^query parameter "page": /);
    expect(await answer('/posts')).toMatchObject({ status: 400, body: { field: 'query.page' } });
    expect(ran).toEqual([]);
    expect(await answer('/posts?page=2')).toEqual({ status: 200, body: { page: 2 } });
  });

  it('answers 400 naming the field inside the body, an unknown key by its own name', async () => {
    expect(await answer('/posts', post({ title: 'hi' }))).toEqual({
      status: 400,
      body: {
        error: 'INVALID_REQUEST',
        message: 'body "title": must have at least 3 characters',
        field: 'body.title',
      },
    });
    expect(await answer('/posts', post({ title: 'hello', tags: ['a', 2] }))).toMatchObject({
      status: 400,
      body: { field: 'body.tags[1]' },
    });
    expect(await answer('/posts', post({ title: 'hello', titel: 'typo' }))).toEqual({
      status: 400,
      body: { error: 'INVALID_REQUEST', message: 'body "titel": unknown key', field: 'body.titel' },
    });
    const none = await answer('/posts', { method: 'POST' });
    expect(none).toMatchObject({ status: 400, body: { error: 'INVALID_REQUEST', field: 'body' } });
    expect((none.body as { message: string }).message).toMatch(/^body: /);
    expect(ran).toEqual([]);
    // What the method gets is the schema's output: the default filled in.
    expect(await answer('/posts', post({ title: 'hello' }))).toEqual({
      status: 200,
      body: { title: 'hello', tags: [] },
    });
  });

  it('answers 400 naming a header, one by name or within all of them', async () => {
    expect(await answer('/posts/mine/all', { headers: { 'x-user': 'ada' } })).toEqual({
      status: 400,
      body: { error: 'INVALID_REQUEST', message: 'header "x-user": must be a UUID', field: 'headers.x-user' },
    });
    expect(await answer('/posts/mine/lang', { headers: { 'accept-language': 'de' } })).toMatchObject({
      status: 400,
      body: { error: 'INVALID_REQUEST', field: 'headers.accept-language' },
    });
    expect(ran).toEqual([]);
    const user = '5f0c3b1e-8a4d-4c5e-9f7a-2b3c4d5e6f70';
    expect(await answer('/posts/mine/all', { headers: { 'x-user': user } })).toEqual({ status: 200, body: { user } });
  });
});
