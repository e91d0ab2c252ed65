import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TrellisApp } from '@trellis/app';
import { RegistryServer } from '@trellis/registry-server';
import { mailApp } from '../src/mail-app.js';

describe('mail: sent by services, read by its user', () => {
  let registry: RegistryServer;
  let registryUrl: string;
  let dir: string;
  const apps: TrellisApp[] = [];

  beforeAll(async () => {
    registry = new RegistryServer({ logLevel: 'silent' });
    registryUrl = (await registry.listen({ port: 0, host: '127.0.0.1' })).url;
  });
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'trellis-mail-'));
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
    rmSync(dir, { recursive: true, force: true });
  });
  afterAll(async () => {
    await registry.close();
  });

  async function start(): Promise<string> {
    const app = mailApp({ databaseFile: path.join(dir, 'mail.sqlite'), registryUrl, logLevel: 'silent', drainMs: 0 });
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
  const hello = { toUserId: '7', from: 'forum', subject: 'ada replied', body: 'Note G.' };

  it('sends a mail (201) that its user finds in the mailbox, unread, then marks read', async () => {
    const url = await start();
    const sent = await send(`${url}/mail`, 'POST', hello);
    expect(sent).toMatchObject({ status: 201, body: { mail: { ...hello, id: expect.any(String), readAt: null } } });
    const id: string = sent.body.mail.id;

    const mailbox = await send(`${url}/mailbox`, 'GET', undefined, { 'x-user-id': '7' });
    expect(mailbox).toMatchObject({ status: 200, body: { unread: 1, mails: [{ id, subject: 'ada replied' }] } });
    // Another user's mailbox does not hold it, and cannot open it.
    expect((await send(`${url}/mailbox`, 'GET', undefined, { 'x-user-id': '8' })).body).toMatchObject({ mails: [] });
    expect((await send(`${url}/mailbox/${id}`, 'GET', undefined, { 'x-user-id': '8' })).status).toBe(404);

    const read = await send(`${url}/mailbox/${id}/read`, 'POST', undefined, { 'x-user-id': '7' });
    expect(read).toMatchObject({ status: 200, body: { mail: { id, readAt: expect.any(String) } } });
    expect((await send(`${url}/mailbox`, 'GET', undefined, { 'x-user-id': '7' })).body).toMatchObject({ unread: 0 });
  });

  it('refuses with 403 a send that came through the gateway (x-forwarded-for), so a browser cannot write mail', async () => {
    const url = await start();
    const refused = await send(`${url}/mail`, 'POST', hello, { 'x-forwarded-for': '203.0.113.9' });
    expect(refused).toEqual({
      status: 403,
      body: { error: 'SERVICES_ONLY', message: 'mail is sent by the services (forum, chat), not from a browser' },
    });
    expect((await send(`${url}/mailbox`, 'GET', undefined, { 'x-user-id': '7' })).body).toMatchObject({ mails: [] });
  });

  it('sends a mail once for one Idempotency-Key, answering a repeat with the first mail', async () => {
    const url = await start();
    const key = { 'idempotency-key': 'forum-reply-12-to-7' };
    const first = await send(`${url}/mail`, 'POST', hello, key);
    const again = await send(`${url}/mail`, 'POST', { ...hello, subject: 'changed' }, key);
    expect(first).toMatchObject({ status: 201, body: { repeated: false } });
    expect(again).toMatchObject({ status: 201, body: { repeated: true, mail: first.body.mail } });
    expect((await send(`${url}/mailbox`, 'GET', undefined, { 'x-user-id': '7' })).body.mails).toHaveLength(1);
    // Without a key, each send is a mail.
    await send(`${url}/mail`, 'POST', hello);
    expect((await send(`${url}/mailbox`, 'GET', undefined, { 'x-user-id': '7' })).body.mails).toHaveLength(2);
  });

  it('answers 401 to a mailbox request with nobody signed in', async () => {
    const url = await start();
    expect(await send(`${url}/mailbox`, 'GET')).toMatchObject({ status: 401, body: { error: 'SIGNED_OUT' } });
  });

  it.each([
    ['an empty subject', 'body.subject', { ...hello, subject: '' }],
    ['a subject over 200 characters', 'body.subject', { ...hello, subject: 's'.repeat(201) }],
    ['a body over 5000 characters', 'body.body', { ...hello, body: 'b'.repeat(5_001) }],
    ['a user id that is not one', 'body.toUserId', { ...hello, toUserId: 'ada' }],
    ['no sender', 'body.from', { ...hello, from: undefined }],
  ])('refuses %s with a 400 naming %s', async (_what, field, body) => {
    const url = await start();
    expect(await send(`${url}/mail`, 'POST', body)).toMatchObject({ status: 400, body: { field } });
  });

  it('pages the mailbox newest first, at most 100 at a time', async () => {
    const url = await start();
    for (let i = 1; i <= 5; i++) await send(`${url}/mail`, 'POST', { ...hello, subject: `mail ${i}` });
    const first = await send(`${url}/mailbox?limit=2`, 'GET', undefined, { 'x-user-id': '7' });
    expect((first.body.mails as Array<{ subject: string }>).map((m) => m.subject)).toEqual(['mail 5', 'mail 4']);
    const second = await send(`${url}/mailbox?limit=2&before=${first.body.next}`, 'GET', undefined, {
      'x-user-id': '7',
    });
    expect((second.body.mails as Array<{ subject: string }>).map((m) => m.subject)).toEqual(['mail 3', 'mail 2']);
    expect((await send(`${url}/mailbox?limit=101`, 'GET', undefined, { 'x-user-id': '7' })).body).toMatchObject({
      field: 'query.limit',
    });
  });

  it('shares one SQLite file between two instances: a mail sent through one is read through the other', async () => {
    const [first, second] = await Promise.all([start(), start()]);
    const sent = await send(`${first}/mail`, 'POST', hello);
    const mailbox = await send(`${second}/mailbox`, 'GET', undefined, { 'x-user-id': '7' });
    expect(mailbox.body.mails).toEqual([sent.body.mail]);
    expect(mailbox.body.servedBy).not.toBe(sent.body.servedBy);
  });

  it('serves its page at / with the instance that served it, and the page script beside it', async () => {
    const url = await start();
    const page = await fetch(`${url}/`);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain(`<meta name="trellis-served-by" content="${apps[0]!.instance!.id}" />`);
    const script = await fetch(`${url}/app.js`);
    expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(await script.text()).toContain("from '/assets/page.js'");
  });
});
