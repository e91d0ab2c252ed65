import type { SqliteDatabase } from '@trellis/example-common';

/** A chat line as it is stored and broadcast. */
export interface ChatMessage {
  readonly id: string;
  readonly room: string;
  readonly user: { readonly id: string; readonly name: string };
  readonly text: string;
  /** ISO 8601. */
  readonly at: string;
}

/** Every room's history; rooms exist by being talked in. */
export const chatSchema = `
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  room TEXT NOT NULL,
  user_id TEXT NOT NULL,
  user_name TEXT NOT NULL,
  text TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room, id);
`;

interface MessageRow {
  readonly id: number;
  readonly room: string;
  readonly user_id: string;
  readonly user_name: string;
  readonly text: string;
  readonly at: number;
}

const messageOf = (row: MessageRow): ChatMessage => ({
  id: String(row.id),
  room: row.room,
  user: { id: row.user_id, name: row.user_name },
  text: row.text,
  at: new Date(row.at).toISOString(),
});

/** Rooms' history in the chat's SQLite file. */
export class ChatStore {
  readonly #now: () => number;
  readonly #insert;
  readonly #page;

  constructor(db: SqliteDatabase, options: { readonly now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
    this.#insert = db.prepare<[string, string, string, string, number], MessageRow>(
      'INSERT INTO messages (room, user_id, user_name, text, at) VALUES (?, ?, ?, ?, ?) RETURNING *',
    );
    this.#page = db.prepare<[string, number, number], MessageRow>(
      'SELECT * FROM messages WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?',
    );
  }

  add(room: string, user: { id: string; name: string }, text: string): ChatMessage {
    return messageOf(this.#insert.get(room, user.id, user.name, text, this.#now()) as MessageRow);
  }

  /** Up to `limit` messages before id `before`, oldest first (the order a room shows them in). */
  history(room: string, before: number, limit: number): ChatMessage[] {
    return this.#page.all(room, before, limit).map(messageOf).reverse();
  }
}
