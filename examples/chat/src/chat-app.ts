import websocket from '@fastify/websocket';
import { TrellisApp, type AppOptions } from '@trellis/app';
import { ChatController } from './chat-controller.js';
import { ChatRooms, type ChatRoomsOptions } from './chat-rooms.js';
import { ChatStore, chatSchema } from './chat-store.js';
import { openDatabase } from '@trellis/example-common';
import { MailClient } from './mail-client.js';
import { servePage } from '@trellis/example-common';
import { UsersClient } from './users-client.js';

export interface ChatAppOptions extends Omit<AppOptions, 'service' | 'controllers' | 'clients'> {
  /** The SQLite file (see databaseFile). */
  readonly databaseFile: string;
  readonly rooms?: ChatRoomsOptions;
  /** Largest frame a client may send, in bytes; a larger one closes its socket with 1009. Default 4 096. */
  readonly maxFrameBytes?: number;
  readonly now?: () => number;
}

/**
 * The chat as a TrellisApp: a WebSocket per user and room at `GET /rooms/:room/socket` (the user
 * from the gateway's `x-user-id` and `x-user-name`), history and presence over HTTP, its page at
 * `/`. On shutdown, once the app's drain is over, every socket is closed with 1001.
 * @example
 * const app = chatApp({ databaseFile: databaseFile('chat', process.env), registryUrl });
 * await app.start();
 */
export function chatApp(options: ChatAppOptions): TrellisApp {
  const { databaseFile, rooms: roomsOptions, maxFrameBytes, now, ...appOptions } = options;
  const db = openDatabase(databaseFile, chatSchema);
  const app = new TrellisApp({
    version: '1.0.0',
    ...appOptions,
    service: 'chat',
    controllers: [ChatController],
    clients: [UsersClient, MailClient],
  });
  const store = new ChatStore(db, now === undefined ? {} : { now });
  const rooms = new ChatRooms(
    { store, users: app.container.get(UsersClient), mail: app.container.get(MailClient), log: app.http.log },
    roomsOptions,
  );
  app.container.bind(ChatStore).toConstantValue(store);
  app.container.bind(ChatRooms).toConstantValue(rooms);
  void app.http.register(websocket, {
    options: { maxPayload: maxFrameBytes ?? 4_096 },
    // Fastify's close runs this once the app's drain is over: the sockets go with 1001.
    preClose(done) {
      rooms.closeAll();
      this.websocketServer.close(() => done());
    },
  });
  void app.http.register(async (scoped) => {
    scoped.get<{ Params: { room: string } }>('/rooms/:room/socket', { websocket: true }, (socket, request) => {
      const id = request.headers['x-user-id'];
      const name = request.headers['x-user-name'];
      const user =
        typeof id === 'string' && /^\d{1,15}$/.test(id) && typeof name === 'string' && name !== ''
          ? { id, name }
          : undefined;
      rooms.join(socket, request.params.room, user);
    });
  });
  servePage(app, new URL('../public/', import.meta.url));
  app.http.addHook('onClose', async () => void db.close());
  return app;
}
