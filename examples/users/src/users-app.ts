import { TrellisApp, type AppOptions } from '@trellis/app';
import { openDatabase } from '@trellis/example-common';
import { SessionsController } from './sessions-controller.js';
import { UsersController } from './users-controller.js';
import { UsersStore, usersSchema, type UsersStoreOptions } from './users-store.js';

export interface UsersAppOptions extends Omit<AppOptions, 'service' | 'controllers'> {
  /** The SQLite file, shared by all instances (see databaseFile); ":memory:" for one alone. */
  readonly databaseFile: string;
  readonly store?: UsersStoreOptions;
}

/**
 * The users service as a TrellisApp, its database open; the database closes with the app.
 * @example
 * const app = usersApp({ databaseFile: databaseFile('users', process.env), registryUrl });
 * await app.start();
 */
export function usersApp(options: UsersAppOptions): TrellisApp {
  const { databaseFile, store: storeOptions, ...appOptions } = options;
  const db = openDatabase(databaseFile, usersSchema);
  const app = new TrellisApp({
    version: '1.0.0',
    ...appOptions,
    service: 'users',
    controllers: [UsersController, SessionsController],
  });
  app.container.bind(UsersStore).toConstantValue(new UsersStore(db, storeOptions));
  answerCreated(app);
  app.http.addHook('onClose', async () => void db.close());
  return app;
}

/** A POST here creates something (a user, a session): answered 201, not 200. */
function answerCreated(app: TrellisApp): void {
  app.http.addHook('onSend', async (request, reply, payload) => {
    if (request.method === 'POST' && reply.statusCode === 200) void reply.code(201);
    return payload;
  });
}
