import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TrellisApp } from '@trellis/app';
import { ManualClock } from '@trellis/core';
import { RegistryServer } from '@trellis/registry-server';
import { usersApp, type UsersAppOptions } from '../src/users-app.js';

describe('users: sign up, sign in, sessions, profiles', () => {
  let registry: RegistryServer;
  let registryUrl: string;
  let dir: string;
  const apps: TrellisApp[] = [];

  beforeAll(async () => {
    registry = new RegistryServer({ logLevel: 'silent' });
    registryUrl = (await registry.listen({ port: 0, host: '127.0.0.1' })).url;
  });
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'trellis-users-'));
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
    rmSync(dir, { recursive: true, force: true });
  });
  afterAll(async () => {
    await registry.close();
  });

  async function start(options: Partial<UsersAppOptions> = {}): Promise<string> {
    const app = usersApp({
      databaseFile: path.join(dir, 'users.sqlite'),
      registryUrl,
      logLevel: 'silent',
      drainMs: 0,
      ...options,
    });
    apps.push(app);
    return (await app.start()).url;
  }

  const send = async (url: string, method: string, body?: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(url, {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
  };

  it('signs up (201), signs in (201, a token), finds the session, and signs out', async () => {
    const url = await start();
    const signedUp = await send(`${url}/users`, 'POST', { name: 'ada', password: 'analytical' });
    expect(signedUp).toEqual({
      status: 201,
      body: { user: { id: expect.any(String), name: 'ada' }, servedBy: expect.any(String) },
    });
    const ada = signedUp.body.user;

    const signedIn = await send(`${url}/sessions`, 'POST', { name: 'ada', password: 'analytical' });
    expect(signedIn.status).toBe(201);
    expect(signedIn.body).toMatchObject({ user: ada, token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    const token: string = signedIn.body.token;

    expect(await send(`${url}/sessions/${token}`, 'GET')).toMatchObject({ status: 200, body: { user: ada } });
    expect(await send(`${url}/users/${ada.id}`, 'GET')).toMatchObject({ status: 200, body: { ...ada, bio: '' } });
    expect(await send(`${url}/users?name=ada&name=nobody`, 'GET')).toMatchObject({
      status: 200,
      body: { users: [ada] },
    });

    expect((await send(`${url}/sessions/${token}`, 'DELETE')).status).toBe(204);
    expect(await send(`${url}/sessions/${token}`, 'GET')).toMatchObject({
      status: 404,
      body: { error: 'SESSION_NOT_FOUND' },
    });
  });

  it('refuses a wrong password or an unknown name with the same 401', async () => {
    const url = await start();
    await send(`${url}/users`, 'POST', { name: 'grace', password: 'cobol-1959' });
    const wrong = await send(`${url}/sessions`, 'POST', { name: 'grace', password: 'fortran-57' });
    const unknown = await send(`${url}/sessions`, 'POST', { name: 'nobody', password: 'fortran-57' });
    expect(wrong).toEqual({ status: 401, body: { error: 'WRONG_CREDENTIALS', message: 'wrong name or password' } });
    expect(unknown).toEqual(wrong);
    // The demo's own account has no password: nobody signs in as it.
    expect((await send(`${url}/sessions`, 'POST', { name: 'trellis', password: '' })).status).toBe(401);
  });

  it('answers a taken name with a 400 naming body.name', async () => {
    const url = await start();
    expect((await send(`${url}/users`, 'POST', { name: 'edsger', password: 'goto-harmful' })).status).toBe(201);
    expect(await send(`${url}/users`, 'POST', { name: 'edsger', password: 'another-one' })).toEqual({
      status: 400,
      body: {
        error: 'NAME_TAKEN',
        message: 'body "name": "edsger" is taken; choose another name',
        field: 'body.name',
      },
    });
  });

  it.each([
    ['a name with a space and capitals', 'body.name', { name: 'Ada Lovelace', password: 'analytical' }],
    ['a name of 2 characters', 'body.name', { name: 'ad', password: 'analytical' }],
    ['a name of 33 characters', 'body.name', { name: 'x'.repeat(33), password: 'analytical' }],
    ['a password of 5 characters', 'body.password', { name: 'ada', password: 'short' }],
    ['a password of 201 characters', 'body.password', { name: 'ada', password: 'p'.repeat(201) }],
    ['no password', 'body.password', { name: 'ada' }],
    ['an unknown key', 'body.admin', { name: 'ada', password: 'analytical', admin: true }],
  ])('refuses a sign-up with %s by a 400 naming %s', async (_what, field, body) => {
    const url = await start();
    const answer = await send(`${url}/users`, 'POST', body);
    expect(answer).toMatchObject({ status: 400, body: { error: 'INVALID_REQUEST', field } });
  });

  it('changes the bio of the signed-in user only, and refuses 401 without one', async () => {
    const url = await start();
    const { body } = await send(`${url}/users`, 'POST', { name: 'barbara', password: 'liskov-subst' });
    const id: string = body.user.id;
    expect(await send(`${url}/users/me`, 'PUT', { bio: 'CLU' }, { 'x-user-id': id })).toMatchObject({
      status: 200,
      body: { id, name: 'barbara', bio: 'CLU' },
    });
    expect(await send(`${url}/users/me`, 'PUT', { bio: 'CLU' })).toMatchObject({
      status: 401,
      body: { error: 'SIGNED_OUT' },
    });
    expect(await send(`${url}/users/me`, 'PUT', { bio: 'b'.repeat(501) }, { 'x-user-id': id })).toMatchObject({
      status: 400,
      body: { field: 'body.bio' },
    });
  });

  it('limits sign-in attempts per client (x-forwarded-for behind the gateway) with 429 and Retry-After', async () => {
    const clock = new ManualClock();
    const url = await start({ clock });
    const attempt = (client: string) =>
      fetch(`${url}/sessions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': client },
        body: JSON.stringify({ name: 'nobody', password: 'guessing' }),
      });
    const statuses: number[] = [];
    for (let i = 0; i < 21; i++) statuses.push((await attempt('203.0.113.7')).status);
    // A burst of 20, then refused until the bucket refills (5 a second).
    expect(statuses).toEqual([...Array<number>(20).fill(401), 429]);
    const limited = await attempt('203.0.113.7');
    expect([limited.status, limited.headers.get('retry-after')]).toEqual([429, '1']);
    // Another client is not held back by the first.
    expect((await attempt('198.51.100.2')).status).toBe(401);
    clock.advance(1_000);
    expect((await attempt('203.0.113.7')).status).toBe(401);
  });

  it('ends a session at its expiry', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const url = await start({ store: { sessionTtlMs: 60_000, now: () => now } });
    await send(`${url}/users`, 'POST', { name: 'alan', password: 'enigma-1941' });
    const { body } = await send(`${url}/sessions`, 'POST', { name: 'alan', password: 'enigma-1941' });
    expect(body.expiresAt).toBe('2026-01-01T00:01:00.000Z');
    now += 59_999;
    expect((await send(`${url}/sessions/${body.token}`, 'GET')).status).toBe(200);
    now += 1;
    expect((await send(`${url}/sessions/${body.token}`, 'GET')).status).toBe(404);
  });

  it('shares one SQLite file between two instances: a sign-up through one signs in through the other', async () => {
    const [first, second] = await Promise.all([start(), start()]);
    const signedUp = await send(`${first}/users`, 'POST', { name: 'katherine', password: 'trajectory' });
    const signedIn = await send(`${second}/sessions`, 'POST', { name: 'katherine', password: 'trajectory' });
    expect(signedIn).toMatchObject({ status: 201, body: { user: signedUp.body.user } });
    expect(signedIn.body.servedBy).not.toBe(signedUp.body.servedBy);
    // A session opened through one is known to the other; the name is taken for both.
    expect((await send(`${first}/sessions/${signedIn.body.token}`, 'GET')).status).toBe(200);
    expect((await send(`${first}/users`, 'POST', { name: 'katherine', password: 'trajectory' })).status).toBe(400);
  });
});
