import { TrellisApp, type AppOptions } from '@trellis/app';
import { openDatabase } from '@trellis/example-common';
import { ForumController } from './forum-controller.js';
import { ForumStore, forumSchema } from './forum-store.js';
import { MailClient } from './mail-client.js';
import { servePage } from '@trellis/example-common';
import { UsersClient } from './users-client.js';
import { forumSettings } from './forum-settings.js';

export interface ForumAppOptions extends Omit<AppOptions, 'service' | 'controllers' | 'clients'> {
  /** The SQLite file, shared by all instances (see databaseFile). */
  readonly databaseFile: string;
  readonly now?: () => number;
}

/**
 * The forum as a TrellisApp: calls users (names) and mail (notifications) by service name, keeps
 * boards, threads and replies in SQLite, serves its page at `/`.
 * @example
 * const app = forumApp({ databaseFile: databaseFile('forum', process.env), registryUrl });
 * await app.start();
 */
export function forumApp(options: ForumAppOptions): TrellisApp {
  const { databaseFile, now, ...appOptions } = options;
  const db = openDatabase(databaseFile, forumSchema);
  const app = new TrellisApp({
    version: '1.0.0',
    // Round robin, so that the demo shows calls taking turns over the users instances. The
    // default, P2C over peak EWMA, sends most calls to whichever instance answers faster.
    client: { strategy: 'round-robin' },
    ...appOptions,
    service: 'forum',
    controllers: [ForumController],
    config: { schema: forumSettings },
    clients: [UsersClient, MailClient],
  });
  app.container.bind(ForumStore).toConstantValue(new ForumStore(db, now === undefined ? {} : { now }));
  // Posting a thread or a reply creates it: 201.
  app.http.addHook('onSend', async (request, reply, payload) => {
    if (request.method === 'POST' && reply.statusCode === 200) void reply.code(201);
    return payload;
  });
  servePage(app, new URL('../public/', import.meta.url));
  app.http.addHook('onClose', async () => void db.close());
  return app;
}
