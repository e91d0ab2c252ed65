import { TrellisApp, type AppOptions } from '@trellis/app';
import { openDatabase } from '@trellis/example-common';
import { MailboxController, MailController } from './mail-controller.js';
import { MailStore, mailSchema } from './mail-store.js';
import { servePage } from '@trellis/example-common';

export interface MailAppOptions extends Omit<AppOptions, 'service' | 'controllers'> {
  /** The SQLite file, shared by all instances (see databaseFile). */
  readonly databaseFile: string;
  readonly now?: () => number;
}

/**
 * The mail service as a TrellisApp, its database open and its page served at `/`; the database
 * closes with the app.
 * @example
 * const app = mailApp({ databaseFile: databaseFile('mail', process.env), registryUrl });
 * await app.start();
 */
export function mailApp(options: MailAppOptions): TrellisApp {
  const { databaseFile, now, ...appOptions } = options;
  const db = openDatabase(databaseFile, mailSchema);
  const app = new TrellisApp({
    version: '1.0.0',
    ...appOptions,
    service: 'mail',
    controllers: [MailController, MailboxController],
  });
  app.container.bind(MailStore).toConstantValue(new MailStore(db, now === undefined ? {} : { now }));
  // Sending creates a mail: 201.
  app.http.addHook('onSend', async (request, reply, payload) => {
    if (request.routeOptions.url === '/mail' && request.method === 'POST' && reply.statusCode === 200) {
      void reply.code(201);
    }
    return payload;
  });
  servePage(app, new URL('../public/', import.meta.url));
  app.http.addHook('onClose', async () => void db.close());
  return app;
}
