import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TrellisApp } from '@trellis/app';
import { ConsulKv } from '@trellis/config';
import { RegistryServer } from '@trellis/registry-server';
import { mailApp } from '../../mail/src/mail-app.js';
import { usersApp } from '../../users/src/users-app.js';
import { forumApp } from '../src/forum-app.js';

describe('forum: boards, threads and replies; names from users, notifications through mail', () => {
  let registry: RegistryServer;
  let registryUrl: string;
  let dir: string;
  let users: string;
  let mail: string;
  let forum: string;
  const apps: TrellisApp[] = [];

  beforeAll(async () => {
    registry = new RegistryServer({ logLevel: 'silent' });
    registryUrl = (await registry.listen({ port: 0, host: '127.0.0.1' })).url;
  });
  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'trellis-forum-'));
    const common = { registryUrl, logLevel: 'silent' as const, drainMs: 0 };
    const made = [
      usersApp({ ...common, databaseFile: path.join(dir, 'users.sqlite') }),
      mailApp({ ...common, databaseFile: path.join(dir, 'mail.sqlite') }),
      forumApp({ ...common, databaseFile: path.join(dir, 'forum.sqlite') }),
    ];
    apps.push(...made);
    const urls = await Promise.all(made.map(async (a) => (await a.start()).url));
    [users, mail, forum] = urls as [string, string, string];
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
    rmSync(dir, { recursive: true, force: true });
  });
  afterAll(async () => {
    await registry.close();
  });

  const call = async (url: string, method = 'GET', body?: unknown, user?: { id: string; name: string }) => {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (user !== undefined) Object.assign(headers, { 'x-user-id': user.id, 'x-user-name': user.name });
    const response = await fetch(url, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: JSON.parse(await response.text()) };
  };
  const signUp = async (name: string) =>
    (await call(`${users}/users`, 'POST', { name, password: 'long enough' })).body.user as { id: string; name: string };

  it('lists the seeded boards and the welcome thread, its author named by users', async () => {
    const boards = await call(`${forum}/boards`);
    expect((boards.body.boards as Array<{ id: string }>).map((b) => b.id)).toEqual([
      'announcements',
      'general',
      'help',
    ]);
    const welcome = await call(`${forum}/threads/1`);
    expect(welcome).toMatchObject({
      status: 200,
      body: {
        thread: { id: '1', boardId: 'announcements', author: { id: '1', name: 'trellis' } },
        replies: [],
        authorServedBy: expect.stringMatching(/^users-/),
      },
    });
  });

  it('posts a thread (201) and a reply, and mails the thread’s author about the reply', async () => {
    const ada = await signUp('ada');
    const bob = await signUp('bob');
    const posted = await call(
      `${forum}/boards/general/threads`,
      'POST',
      { title: 'Engines', body: 'Who has one?' },
      ada,
    );
    expect(posted).toMatchObject({ status: 201, body: { thread: { title: 'Engines', author: ada, replies: 0 } } });
    const threadId: string = posted.body.thread.id;

    const replied = await call(`${forum}/threads/${threadId}/replies`, 'POST', { body: 'I do.' }, bob);
    expect(replied).toMatchObject({ status: 201, body: { reply: { body: 'I do.', author: bob }, notified: true } });

    const thread = await call(`${forum}/threads/${threadId}`);
    expect(thread.body).toMatchObject({
      thread: { replies: 1, author: ada },
      replies: [{ body: 'I do.', author: bob }],
    });
    expect(thread.body.usersServedBy).toHaveLength(2); // one call to users per author

    const mailbox = await call(`${mail}/mailbox`, 'GET', undefined, ada);
    expect(mailbox.body.mails).toEqual([
      expect.objectContaining({
        toUserId: ada.id,
        from: 'forum: bob',
        subject: 'bob replied to "Engines"',
        body: expect.stringContaining('I do.'),
      }),
    ]);
  });

  it('mails nobody when the author replies to their own thread', async () => {
    const ada = await signUp('ada');
    const posted = await call(`${forum}/boards/general/threads`, 'POST', { title: 'Notes', body: 'A' }, ada);
    const replied = await call(`${forum}/threads/${posted.body.thread.id}/replies`, 'POST', { body: 'B' }, ada);
    expect(replied.body.notified).toBe(false);
    expect((await call(`${mail}/mailbox`, 'GET', undefined, ada)).body.mails).toEqual([]);
  });

  it('stores HTML and script in a title and body as typed', async () => {
    const ada = await signUp('ada');
    const title = '<script>alert("x")</script>';
    const body = '<img src=x onerror="alert(1)"> & <b>bold</b>';
    const posted = await call(`${forum}/boards/general/threads`, 'POST', { title, body }, ada);
    const thread = await call(`${forum}/threads/${posted.body.thread.id}`);
    expect(thread.body.thread).toMatchObject({ title, body });
  });

  it('answers 401 to a post with nobody signed in, and 404 for an unknown board or thread', async () => {
    expect(await call(`${forum}/boards/general/threads`, 'POST', { title: 't', body: 'b' })).toMatchObject({
      status: 401,
      body: { error: 'SIGNED_OUT', message: 'sign in to post' },
    });
    const ada = await signUp('ada');
    expect((await call(`${forum}/boards/nowhere/threads`, 'POST', { title: 't', body: 'b' }, ada)).status).toBe(404);
    expect((await call(`${forum}/threads/999`)).body).toMatchObject({ error: 'THREAD_NOT_FOUND' });
  });

  it.each([
    ['an empty title', 'body.title', { title: '  ', body: 'b' }],
    ['a title of 201 characters', 'body.title', { title: 't'.repeat(201), body: 'b' }],
    ['no body', 'body.body', { title: 't' }],
    ['a body of 10 001 characters', 'body.body', { title: 't', body: 'b'.repeat(10_001) }],
  ])('refuses a thread with %s by a 400 naming %s', async (_what, field, body) => {
    const ada = await signUp('ada');
    expect(await call(`${forum}/boards/general/threads`, 'POST', body, ada)).toMatchObject({
      status: 400,
      body: { error: 'INVALID_REQUEST', field },
    });
  });

  it('pages a board’s threads, most recently active first', async () => {
    const ada = await signUp('ada');
    for (const title of ['one', 'two', 'three']) {
      await call(`${forum}/boards/general/threads`, 'POST', { title, body: '.' }, ada);
    }
    const first = await call(`${forum}/boards/general/threads?limit=2`);
    expect((first.body.threads as Array<{ title: string }>).map((t) => t.title)).toEqual(['three', 'two']);
    const second = await call(`${forum}/boards/general/threads?limit=2&cursor=${first.body.next}`);
    expect((second.body.threads as Array<{ title: string }>).map((t) => t.title)).toEqual(['one']);
    expect((await call(`${forum}/boards/general/threads?limit=101`)).body).toMatchObject({ field: 'query.limit' });
  });

  it('takes its page size and whether to mail from its settings, changed live in the registry', async () => {
    const settings = apps[2]?.config;
    const kv = new ConsulKv({ url: registryUrl });
    try {
      const ada = await signUp('ada');
      const bob = await signUp('bob');
      for (const title of ['one', 'two', 'three']) {
        await call(`${forum}/boards/general/threads`, 'POST', { title, body: '.' }, ada);
      }
      const titles = async (): Promise<string[]> =>
        ((await call(`${forum}/boards/general/threads`)).body.threads as Array<{ title: string }>).map((t) => t.title);
      expect((await titles()).length).toBeGreaterThan(2);

      const changed = new Promise((resolve) => settings?.onChange('pageSize', resolve));
      await kv.put('config/forum/pageSize', '2');
      expect(await changed).toBe(2);
      expect(await titles()).toEqual(['three', 'two']);

      const off = new Promise((resolve) => settings?.onChange('notifyByMail', resolve));
      await kv.put('config/forum/notifyByMail', 'false');
      expect(await off).toBe(false);
      const posted = await call(`${forum}/boards/general/threads`, 'POST', { title: 'quiet', body: '.' }, ada);
      const replied = await call(`${forum}/threads/${posted.body.thread.id}/replies`, 'POST', { body: 'hi' }, bob);
      expect(replied.body.notified).toBe(false);

      // A value the schema refuses keeps the last good one, and the status says so.
      await kv.put('config/forum/pageSize', '1000');
      await new Promise((resolve) => settings?.onRefused(resolve));
      expect(await titles()).toEqual(['quiet', 'three']);
      const status = (await call(`${forum}/trellis`)).body as { config: { refusals: Array<{ key: string }> } };
      expect(status.config.refusals).toContainEqual(
        expect.objectContaining({ key: 'pageSize', source: 'kv:config/forum/pageSize' }),
      );
    } finally {
      await kv.delete('config/', { recurse: true });
      await kv.close();
    }
  });
});
