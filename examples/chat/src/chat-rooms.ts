import type { FastifyBaseLogger } from 'fastify';
import { systemClock, type Clock } from '@trellis/core';
import { TokenBucket } from '@trellis/resilience';
import { WebSocket } from 'ws';
import { z } from 'zod';
import type { ChatMessage, ChatStore } from './chat-store.js';
import type { MailClient } from './mail-client.js';
import type { UsersClient } from './users-client.js';

/** A room's name: what the URL and the page show. */
export const roomName = z.string().regex(/^[a-z0-9-]{1,32}$/, 'must be 1 to 32 characters, each a-z, 0-9 or "-"');

/** What a client may send: one kind of frame so far. */
const clientFrame = z.strictObject({
  type: z.literal('message', { error: 'must be "message"' }),
  text: z
    .string({ error: 'must be a string' })
    .refine((s) => s.trim() !== '', 'must not be empty')
    .refine((s) => s.length <= 500, 'must be at most 500 characters'),
});

export interface ChatUser {
  readonly id: string;
  readonly name: string;
}

/** Close codes the chat uses beside the standard ones (4000–4999 are the application's). */
export const closeCodes = {
  /** No signed-in user: the upgrade came without `x-user-id` / `x-user-name`. */
  signedOut: 4401,
  /** The room name is not one. */
  badRoom: 4400,
  /** Standard: the room (or the server) holds as many sockets as it takes; try later. */
  full: 1013,
  /** Standard: the server is shutting down (drain); reconnect, to another instance. */
  goingAway: 1001,
} as const;

export interface ChatRoomsOptions {
  /** Sockets one room holds at most; default 100. */
  readonly maxSocketsPerRoom?: number;
  /** Sockets the instance holds at most, all rooms together; default 1 000. */
  readonly maxSockets?: number;
  /** Distinct `@names` of one message that are looked up and mailed; default 5. */
  readonly maxMentions?: number;
  /** Messages one socket may send per second, on average; default 5, in bursts of up to 10. */
  readonly messagesPerSecond?: number;
  readonly clock?: Clock;
}

const mention = /(?:^|[^a-z0-9_-])@([a-z0-9_-]{3,32})(?![a-z0-9_-])/g;

/**
 * The rooms of one chat instance: who is connected where, broadcasting, presence, and mailing
 * the users a message mentions who are not in the room. History is in SQLite (shared by all
 * instances); presence is per instance, as are the sockets.
 */
export class ChatRooms {
  readonly #rooms = new Map<string, Map<WebSocket, ChatUser>>();
  readonly #clock: Clock;
  readonly #messagesPerSecond: number;
  readonly #store: ChatStore;
  readonly #users: UsersClient;
  readonly #mail: MailClient;
  readonly #log: FastifyBaseLogger;
  readonly #maxPerRoom: number;
  readonly #max: number;
  readonly #maxMentions: number;
  #sockets = 0;
  #closing = false;

  constructor(
    deps: { store: ChatStore; users: UsersClient; mail: MailClient; log: FastifyBaseLogger },
    options: ChatRoomsOptions = {},
  ) {
    this.#store = deps.store;
    this.#users = deps.users;
    this.#mail = deps.mail;
    this.#log = deps.log;
    this.#maxPerRoom = options.maxSocketsPerRoom ?? 100;
    this.#max = options.maxSockets ?? 1_000;
    this.#maxMentions = options.maxMentions ?? 5;
    this.#messagesPerSecond = options.messagesPerSecond ?? 5;
    this.#clock = options.clock ?? systemClock;
  }

  /** Sockets open now, all rooms together. */
  get sockets(): number {
    return this.#sockets;
  }

  /** The distinct users in a room, in the order they came. */
  presence(room: string): ChatUser[] {
    const seen = new Map<string, ChatUser>();
    for (const user of this.#rooms.get(room)?.values() ?? []) seen.set(user.id, user);
    return [...seen.values()];
  }

  /** The rooms with someone in them, and how many. */
  active(): Array<{ room: string; users: number }> {
    return [...this.#rooms.keys()].map((room) => ({ room, users: this.presence(room).length }));
  }

  /**
   * Takes a new socket into a room: closed at once (with a code and reason) without a user, for a
   * bad room name, or when full; else the room is told the new presence.
   */
  join(socket: WebSocket, room: string, user: ChatUser | undefined): void {
    if (user === undefined) return socket.close(closeCodes.signedOut, 'sign in to chat');
    if (!roomName.safeParse(room).success) return socket.close(closeCodes.badRoom, 'no such room name');
    if (this.#closing) return socket.close(closeCodes.goingAway, 'server shutting down');
    let members = this.#rooms.get(room);
    if (this.#sockets >= this.#max || (members?.size ?? 0) >= this.#maxPerRoom) {
      return socket.close(closeCodes.full, 'the room is full; try again later');
    }
    if (members === undefined) {
      members = new Map();
      this.#rooms.set(room, members);
    }
    members.set(socket, user);
    this.#sockets++;
    // Per socket: one client flooding a room slows only itself.
    const bucket = new TokenBucket({
      ratePerSecond: this.#messagesPerSecond,
      burst: this.#messagesPerSecond * 2,
      clock: this.#clock,
    });
    socket.on('message', (data, isBinary) => {
      const decision = bucket.tryAcquire();
      if (decision.granted) return this.#received(socket, room, user, data, isBinary);
      send(socket, {
        type: 'error',
        message: `too many messages; wait ${Math.ceil((decision.retryAfterMs ?? 1_000) / 1_000)} s`,
      });
    });
    socket.once('close', () => this.#left(socket, room));
    this.#broadcast(room, { type: 'presence', room, users: this.presence(room) });
  }

  /** Closes every socket with 1001 (going away), so that clients reconnect to another instance. */
  closeAll(): void {
    this.#closing = true;
    for (const members of this.#rooms.values()) {
      for (const socket of members.keys()) socket.close(closeCodes.goingAway, 'server shutting down');
    }
  }

  #left(socket: WebSocket, room: string): void {
    const members = this.#rooms.get(room);
    if (members?.delete(socket) !== true) return;
    this.#sockets--;
    if (members.size === 0) this.#rooms.delete(room);
    else this.#broadcast(room, { type: 'presence', room, users: this.presence(room) });
  }

  #received(socket: WebSocket, room: string, user: ChatUser, data: WebSocket.RawData, isBinary: boolean): void {
    let frame: unknown;
    try {
      // Text frames arrive as one Buffer (ws' default binaryType, 'nodebuffer').
      frame = isBinary ? undefined : JSON.parse((data as Buffer).toString('utf8'));
    } catch {
      frame = undefined;
    }
    const parsed = clientFrame.safeParse(frame);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue?.path.join('.') ?? '';
      const message =
        frame === undefined
          ? 'a frame must be JSON text, e.g. {"type":"message","text":"hello"}'
          : `${field === '' ? 'frame' : `"${field}"`}: ${issue?.message ?? 'invalid'}`;
      return send(socket, { type: 'error', field: field === '' ? undefined : field, message });
    }
    const message = this.#store.add(room, user, parsed.data.text);
    this.#broadcast(room, { type: 'message', ...message });
    void this.#mailMentioned(socket, message);
  }

  // The mentioned users who are not in the room get a mail; the sender is told who was mailed.
  async #mailMentioned(socket: WebSocket, { id, room, user: sender, text }: ChatMessage): Promise<void> {
    const present = new Set(this.presence(room).map((u) => u.name));
    const names = [...new Set([...text.matchAll(mention)].map((m) => m[1] as string))]
      .filter((name) => !present.has(name))
      .slice(0, this.#maxMentions);
    if (names.length === 0) return;
    try {
      const { users } = await this.#users.byNames(names);
      const absent = users.filter((u) => !present.has(u.name) && u.id !== sender.id);
      await Promise.all(
        absent.map((user) =>
          this.#mail.send(
            {
              toUserId: user.id,
              from: `chat: ${sender.name}`,
              subject: `${sender.name} mentioned you in #${room}`,
              body: `${sender.name} wrote in #${room}:\n\n${text}\n\n— join the room at /chat/#${room}`,
            },
            `chat-mention-${id}-${user.id}`,
          ),
        ),
      );
      if (absent.length > 0) send(socket, { type: 'mailed', users: absent.map((u) => ({ id: u.id, name: u.name })) });
    } catch (error) {
      this.#log.warn({ err: error, room }, 'could not mail the users a message mentioned');
      send(socket, { type: 'error', message: 'the mentioned users could not be mailed right now' });
    }
  }

  #broadcast(room: string, frame: object): void {
    const text = JSON.stringify(frame);
    for (const socket of this.#rooms.get(room)?.keys() ?? []) {
      if (socket.readyState === WebSocket.OPEN) socket.send(text);
    }
  }
}

function send(socket: WebSocket, frame: object): void {
  if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}
