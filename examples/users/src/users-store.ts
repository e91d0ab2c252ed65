import { createHash, randomBytes } from 'node:crypto';
import type { SqliteDatabase } from '@trellis/example-common';

/** A user as other services see one. */
export interface User {
  readonly id: string;
  readonly name: string;
}

/** A user's public profile. */
export interface Profile extends User {
  readonly bio: string;
  /** When the account was made, ISO 8601. */
  readonly createdAt: string;
}

/** A signed-in session: the token is shown once, when made; the database keeps its hash. */
export interface Session {
  readonly token: string;
  readonly user: User;
  /** ISO 8601. */
  readonly expiresAt: string;
}

export interface UsersStoreOptions {
  /** How long a session lasts; default 7 days. */
  readonly sessionTtlMs?: number;
  /** Wall-clock time in ms (sessions expire across processes, so not a monotonic clock); default Date.now. */
  readonly now?: () => number;
}

/**
 * The users' tables. Ids are SQLite's integer keys, given out as strings (the form every other
 * service keeps them in, and the `x-user-id` header carries). User 1, "trellis", is the demo's
 * own account, with no password: it cannot sign in; the forum's welcome thread is its.
 */
export const usersSchema = `
CREATE TABLE IF NOT EXISTS users (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  password_hash TEXT,
  bio TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
  token_hash TEXT PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id),
  expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at);
INSERT OR IGNORE INTO users (id, name, password_hash, bio, created_at)
  VALUES (1, 'trellis', NULL, 'The demo''s own account: it wrote the welcome thread.', unixepoch() * 1000);
`;

interface UserRow {
  readonly id: number;
  readonly name: string;
  readonly password_hash: string | null;
  readonly bio: string;
  readonly created_at: number;
}

const profileOf = (row: UserRow): Profile => ({
  id: String(row.id),
  name: row.name,
  bio: row.bio,
  createdAt: new Date(row.created_at).toISOString(),
});

// Only the hash is stored: a copy of the database does not hand out live sessions.
const tokenHash = (token: string): string => createHash('sha256').update(token).digest('base64url');

/** Users and sessions in the service's SQLite file, shared by all its instances. */
export class UsersStore {
  readonly #db: SqliteDatabase;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #insertUser;
  readonly #byId;
  readonly #byName;
  readonly #page;
  readonly #setBio;
  readonly #insertSession;
  readonly #sessionUser;
  readonly #deleteSession;
  readonly #deleteExpired;

  constructor(db: SqliteDatabase, options: UsersStoreOptions = {}) {
    this.#db = db;
    this.#ttlMs = options.sessionTtlMs ?? 7 * 24 * 3_600_000;
    this.#now = options.now ?? Date.now;
    this.#insertUser = db.prepare<[string, string, number], UserRow>(
      'INSERT INTO users (name, password_hash, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING *',
    );
    this.#byId = db.prepare<[number], UserRow>('SELECT * FROM users WHERE id = ?');
    this.#byName = db.prepare<[string], UserRow>('SELECT * FROM users WHERE name = ?');
    this.#page = db.prepare<[number, number], UserRow>('SELECT * FROM users WHERE id > ? ORDER BY id LIMIT ?');
    this.#setBio = db.prepare<[string, number], UserRow>('UPDATE users SET bio = ? WHERE id = ? RETURNING *');
    this.#insertSession = db.prepare<[string, number, number]>(
      'INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (?, ?, ?)',
    );
    this.#sessionUser = db.prepare<[string, number], UserRow & { expires_at: number }>(
      'SELECT users.*, sessions.expires_at FROM sessions JOIN users ON users.id = sessions.user_id WHERE token_hash = ? AND expires_at > ?',
    );
    this.#deleteSession = db.prepare<[string]>('DELETE FROM sessions WHERE token_hash = ?');
    // Bounded per call, so that a sign-in never pays for a large backlog at once.
    this.#deleteExpired = db.prepare<[number]>(
      'DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions WHERE expires_at <= ? LIMIT 100)',
    );
  }

  /** Adds a user; undefined when the name is taken (by this instance or another one). */
  add(name: string, passwordHash: string): Profile | undefined {
    const row = this.#insertUser.get(name, passwordHash, this.#now());
    return row === undefined ? undefined : profileOf(row);
  }

  byId(id: string): Profile | undefined {
    const row = this.#byId.get(Number(id));
    return row === undefined ? undefined : profileOf(row);
  }

  byName(name: string): Profile | undefined {
    const row = this.#byName.get(name);
    return row === undefined ? undefined : profileOf(row);
  }

  /** The stored password of a name, null for an account that cannot sign in; undefined for no such user. */
  credentials(name: string): { readonly user: User; readonly passwordHash: string | null } | undefined {
    const row = this.#byName.get(name);
    return row === undefined
      ? undefined
      : { user: { id: String(row.id), name: row.name }, passwordHash: row.password_hash };
  }

  /** Up to `limit` users with ids above `after`, in id order. */
  page(after: number, limit: number): Profile[] {
    return this.#page.all(after, limit).map(profileOf);
  }

  setBio(id: string, bio: string): Profile | undefined {
    const row = this.#setBio.get(bio, Number(id));
    return row === undefined ? undefined : profileOf(row);
  }

  /** A new session for `user`: a random 32-byte token, base64url. */
  openSession(user: User): Session {
    const now = this.#now();
    const token = randomBytes(32).toString('base64url');
    const expiresAt = now + this.#ttlMs;
    this.#db
      .transaction(() => {
        this.#deleteExpired.run(now);
        this.#insertSession.run(tokenHash(token), Number(user.id), expiresAt);
      })
      .immediate();
    return { token, user, expiresAt: new Date(expiresAt).toISOString() };
  }

  /** The session of a token, undefined when unknown or expired. */
  session(token: string): Omit<Session, 'token'> | undefined {
    const row = this.#sessionUser.get(tokenHash(token), this.#now());
    if (row === undefined) return undefined;
    return { user: { id: String(row.id), name: row.name }, expiresAt: new Date(row.expires_at).toISOString() };
  }

  /** Ends a session; false when there was none. */
  closeSession(token: string): boolean {
    return this.#deleteSession.run(tokenHash(token)).changes > 0;
  }
}
