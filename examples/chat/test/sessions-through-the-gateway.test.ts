import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { TrellisApp } from '@trellis/app';
import { Gateway } from '@trellis/gateway';
import { RegistryServer } from '@trellis/registry-server';
import { mailApp } from '../../mail/src/mail-app.js';
import { usersApp } from '../../users/src/users-app.js';
import { chatApp } from '../src/chat-app.js';

// The example gateway's own routes.json, so that the contract between the pages, the gateway
// and the services is the one the demo runs.
const routesFile = fileURLToPath(new URL('../../gateway/routes.json', import.meta.url));

describe('through the gateway: the session cookie is the user of a chat socket, and mail stays the services’ own', () => {
  let registry: RegistryServer;
  let dir: string;
  let gateway: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    registry = new RegistryServer({ logLevel: 'silent' });
    const { url: registryUrl } = await registry.listen({ port: 0, host: '127.0.0.1' });
    dir = mkdtempSync(path.join(tmpdir(), 'trellis-chat-gateway-'));
    const common = { registryUrl, logLevel: 'silent' as const, drainMs: 0 };
    const services = [
      usersApp({ ...common, databaseFile: path.join(dir, 'users.sqlite') }),
      mailApp({ ...common, databaseFile: path.join(dir, 'mail.sqlite') }),
      chatApp({ ...common, databaseFile: path.join(dir, 'chat.sqlite') }),
    ];
    const edge = new TrellisApp({ service: 'gateway', ...common });
    const routes = new Gateway(edge, {
      routesFile,
      routesFilePollMs: 0,
      auth: { service: 'users', path: '/sessions/{token}' },
    });
    await Promise.all(services.map((s) => s.start()));
    gateway = (await edge.start()).url;
    close = async () => {
      await routes.close();
      await edge.close();
      await Promise.all(services.map((s) => s.close()));
    };
  });
  afterAll(async () => {
    await close?.();
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = async (url: string, body: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    return {
      status: response.status,
      body: JSON.parse(await response.text()),
      servedBy: response.headers.get('x-served-by'),
    };
  };

  async function signedUp(name: string): Promise<{ cookie: string; user: { id: string; name: string } }> {
    await post(`${gateway}/api/users/users`, { name, password: 'long enough' });
    const session = await post(`${gateway}/api/users/sessions`, { name, password: 'long enough' });
    expect(session.status).toBe(201);
    return { cookie: `session=${session.body.token}`, user: session.body.user };
  }

  function socket(headers: Record<string, string>): WebSocket {
    return new WebSocket(`${gateway.replace('http', 'ws')}/api/chat/rooms/general/socket`, { headers });
  }

  it('joins the room as the signed-in user, whatever x-user-id the client sends', async () => {
    const { cookie, user } = await signedUp('ada');
    const ws = socket({ cookie, 'x-user-id': '999', 'x-user-name': 'mallory' });
    const [data] = await once(ws, 'message');
    expect(JSON.parse(String(data))).toEqual({ type: 'presence', room: 'general', users: [user] });
    const closed = once(ws, 'close');
    ws.close();
    await closed;
  });

  it('closes the socket of a client with no session with 4401, even when it says who it is', async () => {
    const ws = socket({ 'x-user-id': '1', 'x-user-name': 'trellis' });
    const [code, reason] = await once(ws, 'close');
    expect([code, String(reason)]).toEqual([4401, 'sign in to chat']);
  });

  it('refuses a mail sent from outside: the gateway forwards it, mail answers 403', async () => {
    const { cookie, user } = await signedUp('bob');
    const sent = await post(
      `${gateway}/api/mail/mail`,
      { toUserId: user.id, from: 'forum', subject: 'fake', body: 'a browser writing mail' },
      { cookie },
    );
    expect(sent).toMatchObject({ status: 403, body: { error: 'SERVICES_ONLY' } });
    const mailbox = await fetch(`${gateway}/api/mail/mailbox`, { headers: { cookie } });
    expect(((await mailbox.json()) as { mails: unknown[] }).mails).toEqual([]);
  });
});
