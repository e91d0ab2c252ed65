import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WebSocket } from 'ws';
import type { TrellisApp } from '@trellis/app';
import { ManualClock } from '@trellis/core';
import { RegistryServer } from '@trellis/registry-server';
import { mailApp } from '../../mail/src/mail-app.js';
import { usersApp } from '../../users/src/users-app.js';
import { chatApp } from '../src/chat-app.js';

interface User {
  readonly id: string;
  readonly name: string;
}

interface Frame {
  readonly type: string;
  readonly [key: string]: unknown;
}

/** A ws client that queues the frames it receives, so that a test waits for the next one. */
class Client {
  readonly frames: Frame[] = [];
  readonly #waiting: Array<(frame: Frame) => void> = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const frame = JSON.parse((data as Buffer).toString('utf8')) as Frame;
      const waiter = this.#waiting.shift();
      if (waiter) waiter(frame);
      else this.frames.push(frame);
    });
    this.closed = once(socket, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason) }));
  }

  /** The next frame of `type` (others before it are dropped), within 5 s. */
  async next(type: string): Promise<Frame> {
    for (;;) {
      const queued = this.frames.shift();
      const frame =
        queued ??
        (await new Promise<Frame>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no "${type}" frame within 5 s`)), 5_000);
          this.#waiting.push((f) => {
            clearTimeout(timer);
            resolve(f);
          });
        }));
      if (frame.type === type) return frame;
    }
  }

  send(frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }
}

describe('chat: rooms over a real WebSocket, history, presence, mentions mailed', () => {
  let registry: RegistryServer;
  let registryUrl: string;
  let dir: string;
  const apps: TrellisApp[] = [];
  const sockets: WebSocket[] = [];

  beforeAll(async () => {
    registry = new RegistryServer({ logLevel: 'silent' });
    registryUrl = (await registry.listen({ port: 0, host: '127.0.0.1' })).url;
  });
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'trellis-chat-'));
  });
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.terminate();
    await Promise.all(apps.splice(0).map((a) => a.close()));
    rmSync(dir, { recursive: true, force: true });
  });
  afterAll(async () => {
    await registry.close();
  });

  const common = () => ({ registryUrl, logLevel: 'silent' as const, drainMs: 0 });
  async function start<T extends TrellisApp>(app: T): Promise<string> {
    apps.push(app);
    return (await app.start()).url;
  }
  const json = async (url: string, init: RequestInit = {}) => {
    const response = await fetch(url, init);
    return { status: response.status, body: JSON.parse(await response.text()) };
  };
  const post = (url: string, body: unknown) =>
    json(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  async function connect(chat: string, room: string, user?: { id: string; name: string }): Promise<Client> {
    const headers: Record<string, string> =
      user === undefined ? {} : { 'x-user-id': user.id, 'x-user-name': user.name };
    const socket = new WebSocket(`${chat.replace('http', 'ws')}/rooms/${room}/socket`, { headers });
    sockets.push(socket);
    const client = new Client(socket);
    await once(socket, 'open');
    return client;
  }

  it('broadcasts a message to the room, keeps it in the history, and shows presence on join and leave', async () => {
    const chat = await start(chatApp({ ...common(), databaseFile: path.join(dir, 'chat.sqlite') }));
    const ada = await connect(chat, 'general', { id: '2', name: 'ada' });
    expect(await ada.next('presence')).toEqual({
      type: 'presence',
      room: 'general',
      users: [{ id: '2', name: 'ada' }],
    });
    const bob = await connect(chat, 'general', { id: '3', name: 'bob' });
    const both = {
      type: 'presence',
      room: 'general',
      users: [
        { id: '2', name: 'ada' },
        { id: '3', name: 'bob' },
      ],
    };
    expect(await ada.next('presence')).toEqual(both);
    expect(await bob.next('presence')).toEqual(both);

    ada.send({ type: 'message', text: 'hello <b>bob</b>' });
    const heard = await bob.next('message');
    expect(heard).toEqual({
      type: 'message',
      id: expect.any(String),
      room: 'general',
      user: { id: '2', name: 'ada' },
      text: 'hello <b>bob</b>',
      at: expect.any(String),
    });
    expect(await ada.next('message')).toEqual(heard);

    const history = await json(`${chat}/rooms/general/messages`);
    expect(history.body.messages).toEqual([{ ...heard, type: undefined }].map(({ type: _t, ...m }) => m));
    expect((await json(`${chat}/rooms/general/presence`)).body.users).toHaveLength(2);

    bob.socket.close();
    expect(await ada.next('presence')).toEqual({
      type: 'presence',
      room: 'general',
      users: [{ id: '2', name: 'ada' }],
    });
  });

  it('closes a socket with 4401 and a reason when nobody is signed in', async () => {
    const chat = await start(chatApp({ ...common(), databaseFile: path.join(dir, 'chat.sqlite') }));
    const stranger = await connect(chat, 'general');
    expect(await stranger.closed).toEqual({ code: 4401, reason: 'sign in to chat' });
  });

  it.each([
    ['an empty text', { type: 'message', text: '   ' }, '"text": must not be empty'],
    ['a text of 501 characters', { type: 'message', text: 'x'.repeat(501) }, '"text": must be at most 500 characters'],
    ['an unknown type', { type: 'shout', text: 'hi' }, '"type": must be "message"'],
    ['text that is not JSON', 'hello', 'a frame must be JSON text, e.g. {"type":"message","text":"hello"}'],
  ])('answers %s with an error frame and stores nothing', async (_what, frame, message) => {
    const chat = await start(chatApp({ ...common(), databaseFile: path.join(dir, 'chat.sqlite') }));
    const ada = await connect(chat, 'general', { id: '2', name: 'ada' });
    ada.send(frame);
    expect((await ada.next('error')).message).toContain(message);
    expect((await json(`${chat}/rooms/general/messages`)).body.messages).toEqual([]);
  });

  it('closes with 1009 a socket that sends a frame over the size limit', async () => {
    const chat = await start(
      chatApp({ ...common(), databaseFile: path.join(dir, 'chat.sqlite'), maxFrameBytes: 1_024 }),
    );
    const ada = await connect(chat, 'general', { id: '2', name: 'ada' });
    ada.send({ type: 'message', text: 'x'.repeat(2_000) });
    expect((await ada.closed).code).toBe(1009);
  });

  it('refuses a socket beyond the room limit with 1013', async () => {
    const chat = await start(
      chatApp({ ...common(), databaseFile: path.join(dir, 'chat.sqlite'), rooms: { maxSocketsPerRoom: 1 } }),
    );
    await connect(chat, 'general', { id: '2', name: 'ada' });
    const late = await connect(chat, 'general', { id: '3', name: 'bob' });
    expect(await late.closed).toEqual({ code: 1013, reason: 'the room is full; try again later' });
  });

  it('answers messages beyond the socket’s rate with an error frame, and takes them again once it refills', async () => {
    const clock = new ManualClock();
    const chat = await start(
      chatApp({ ...common(), databaseFile: path.join(dir, 'chat.sqlite'), rooms: { messagesPerSecond: 1, clock } }),
    );
    const ada = await connect(chat, 'general', { id: '2', name: 'ada' });
    for (const text of ['one', 'two', 'three']) ada.send({ type: 'message', text });
    expect(await ada.next('message')).toMatchObject({ text: 'one' });
    expect(await ada.next('message')).toMatchObject({ text: 'two' });
    expect(await ada.next('error')).toEqual({ type: 'error', message: 'too many messages; wait 1 s' });
    clock.advance(1_000);
    ada.send({ type: 'message', text: 'four' });
    expect(await ada.next('message')).toMatchObject({ text: 'four' });
    const history = await json(`${chat}/rooms/general/messages`);
    expect((history.body.messages as Array<{ text: string }>).map((m) => m.text)).toEqual(['one', 'two', 'four']);
  });

  it('mails a mentioned user who is not in the room, through users and mail', async () => {
    const users = await start(usersApp({ ...common(), databaseFile: path.join(dir, 'users.sqlite') }));
    const mail = await start(mailApp({ ...common(), databaseFile: path.join(dir, 'mail.sqlite') }));
    const chat = await start(chatApp({ ...common(), databaseFile: path.join(dir, 'chat.sqlite') }));
    const ada: User = (await post(`${users}/users`, { name: 'ada', password: 'analytical' })).body.user;
    const bob: User = (await post(`${users}/users`, { name: 'bob', password: 'builder-42' })).body.user;
    const carol: User = (await post(`${users}/users`, { name: 'carol', password: 'christmas' })).body.user;

    const adaSocket = await connect(chat, 'general', ada);
    await connect(chat, 'general', carol);
    // bob is away, carol is here, nobody is called @zed.
    adaSocket.send({ type: 'message', text: 'ping @bob and @carol, and @zed' });
    expect(await adaSocket.next('mailed')).toEqual({ type: 'mailed', users: [{ id: bob.id, name: 'bob' }] });

    const bobs = await json(`${mail}/mailbox`, { headers: { 'x-user-id': bob.id } });
    expect(bobs.body.mails).toEqual([
      expect.objectContaining({
        from: 'chat: ada',
        subject: 'ada mentioned you in #general',
        body: expect.stringContaining('ping @bob and @carol, and @zed'),
      }),
    ]);
    const carols = await json(`${mail}/mailbox`, { headers: { 'x-user-id': carol.id } });
    expect(carols.body.mails).toEqual([]);
  });

  it('closes its sockets with 1001 when it shuts down, after the drain', async () => {
    const app = chatApp({ ...common(), drainMs: 200, databaseFile: path.join(dir, 'chat.sqlite') });
    const chat = await start(app);
    const ada = await connect(chat, 'general', { id: '2', name: 'ada' });
    await ada.next('presence');
    const closing = app.close();
    // While the app drains (deregistered, callers catching up), the room still works.
    ada.send({ type: 'message', text: 'still here' });
    expect(await ada.next('message')).toMatchObject({ text: 'still here' });
    expect(await ada.closed).toEqual({ code: 1001, reason: 'server shutting down' });
    await closing;
  });
});
