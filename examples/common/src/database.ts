import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

/** A SQLite database as the services use it (better-sqlite3's). */
export type SqliteDatabase = Database.Database;

/** TRELLIS_DATA_DIR cannot hold the service's database file. */
export class DataDirError extends Error {
  readonly code = 'INVALID_DATA_DIR';
}

/**
 * The service's SQLite file, `<dir>/<service>.sqlite`: `dir` is TRELLIS_DATA_DIR, default
 * `./data` under the working directory, made when missing.
 *
 * @throws DataDirError naming the variable when the folder cannot be made or is a file.
 * @example
 * const file = databaseFile('users', process.env); // ./data/users.sqlite
 */
export function databaseFile(service: string, env: Readonly<Record<string, string | undefined>>): string {
  const given = env['TRELLIS_DATA_DIR'];
  const dir = path.resolve(given === undefined || given === '' ? 'data' : given);
  try {
    mkdirSync(dir, { recursive: true });
    if (!statSync(dir).isDirectory()) throw new Error('not a folder');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new DataDirError(`TRELLIS_DATA_DIR=${dir} cannot hold ${service}.sqlite (${reason}); set it to a folder`);
  }
  return path.join(dir, `${service}.sqlite`);
}

const BUSY_TIMEOUT_MS = 5_000;

/**
 * Sets the WAL journal, retried while another instance holds the file. Two instances opening
 * a fresh file at once both read it, then both ask to write its header: SQLite answers one with
 * SQLITE_BUSY at once, without waiting on the busy timeout, since waiting could deadlock. The
 * other finishes in milliseconds, so a few short retries within the busy timeout suffice.
 */
function switchToWal(db: SqliteDatabase): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  // Bounded by the deadline: each turn that fails past it throws.
  for (let attempt = 1; ; attempt++) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw error;
      // The database is opened synchronously at start-up, so the wait is a synchronous sleep.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.min(5 * attempt, 50));
    }
  }
}

/**
 * Opens (or creates) a service's database so that several instances can share the file: WAL
 * journal (readers never wait for the writer), a busy timeout (a writer waits for another's
 * lock instead of failing), and the schema created in one immediate transaction, since two
 * instances may start at the same moment.
 *
 * @example
 * const db = openDatabase(':memory:', 'CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY)');
 */
export function openDatabase(file: string, schema: string): SqliteDatabase {
  const db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
  try {
    switchToWal(db);
    // With WAL, NORMAL loses no committed data on a crash of the process, only on a power loss.
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.transaction(() => db.exec(schema)).immediate();
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}
