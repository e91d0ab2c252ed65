import type { SqliteDatabase } from '@trellis/example-common';

export interface Board {
  readonly id: string;
  readonly title: string;
  readonly description: string;
  readonly threads: number;
}

export interface Thread {
  readonly id: string;
  readonly boardId: string;
  readonly authorId: string;
  readonly title: string;
  readonly body: string;
  readonly replies: number;
  /** ISO 8601. */
  readonly createdAt: string;
  readonly lastPostAt: string;
}

export interface Reply {
  readonly id: string;
  readonly threadId: string;
  readonly authorId: string;
  readonly body: string;
  readonly createdAt: string;
}

/**
 * Boards (seeded), threads and replies. Authors are users-service ids: the forum keeps no
 * user records. Thread 1, the welcome thread, is by user 1, the users service's own account.
 */
export const forumSchema = `
CREATE TABLE IF NOT EXISTS boards (
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  description TEXT NOT NULL,
  position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS threads (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  board_id TEXT NOT NULL REFERENCES boards(id),
  author_id TEXT NOT NULL,
  title TEXT NOT NULL,
  body TEXT NOT NULL,
  replies INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  last_post_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS threads_by_board ON threads (board_id, last_post_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS replies (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  thread_id INTEGER NOT NULL REFERENCES threads(id),
  author_id TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS replies_by_thread ON replies (thread_id, id);
INSERT OR IGNORE INTO boards (id, title, description, position) VALUES
  ('announcements', 'Announcements', 'News about the demo.', 1),
  ('general', 'General', 'Anything at all.', 2),
  ('help', 'Help', 'Questions about Trellis and this demo.', 3);
INSERT OR IGNORE INTO threads (id, board_id, author_id, title, body, created_at, last_post_at) VALUES
  (1, 'announcements', '1', 'Welcome to the Trellis forum',
   'This forum is one service; the names you see come from the users service, and a reply mails the thread''s author through the mail service. Reply here to try it.',
   unixepoch() * 1000, unixepoch() * 1000);
`;

interface ThreadRow {
  readonly id: number;
  readonly board_id: string;
  readonly author_id: string;
  readonly title: string;
  readonly body: string;
  readonly replies: number;
  readonly created_at: number;
  readonly last_post_at: number;
}

interface ReplyRow {
  readonly id: number;
  readonly thread_id: number;
  readonly author_id: string;
  readonly body: string;
  readonly created_at: number;
}

const iso = (ms: number): string => new Date(ms).toISOString();

const threadOf = (row: ThreadRow): Thread => ({
  id: String(row.id),
  boardId: row.board_id,
  authorId: row.author_id,
  title: row.title,
  body: row.body,
  replies: row.replies,
  createdAt: iso(row.created_at),
  lastPostAt: iso(row.last_post_at),
});

const replyOf = (row: ReplyRow): Reply => ({
  id: String(row.id),
  threadId: String(row.thread_id),
  authorId: row.author_id,
  body: row.body,
  createdAt: iso(row.created_at),
});

/** The forum's tables in its SQLite file, shared by all its instances. */
export class ForumStore {
  readonly #db: SqliteDatabase;
  readonly #now: () => number;
  readonly #boards;
  readonly #board;
  readonly #threads;
  readonly #thread;
  readonly #insertThread;
  readonly #replies;
  readonly #insertReply;
  readonly #bumpThread;

  constructor(db: SqliteDatabase, options: { readonly now?: () => number } = {}) {
    this.#db = db;
    this.#now = options.now ?? Date.now;
    this.#boards = db.prepare<[], Board>(
      'SELECT b.id, b.title, b.description, (SELECT count(*) FROM threads t WHERE t.board_id = b.id) AS threads FROM boards b ORDER BY position',
    );
    this.#board = db.prepare<[string], Board>(
      'SELECT b.id, b.title, b.description, (SELECT count(*) FROM threads t WHERE t.board_id = b.id) AS threads FROM boards b WHERE id = ?',
    );
    // Most recently active first; a page ends at (last_post_at, id) of its last thread.
    this.#threads = db.prepare<[string, number, number, number, number], ThreadRow>(
      `SELECT * FROM threads WHERE board_id = ? AND (last_post_at < ? OR (last_post_at = ? AND id < ?))
       ORDER BY last_post_at DESC, id DESC LIMIT ?`,
    );
    this.#thread = db.prepare<[number], ThreadRow>('SELECT * FROM threads WHERE id = ?');
    this.#insertThread = db.prepare<[string, string, string, string, number, number], ThreadRow>(
      'INSERT INTO threads (board_id, author_id, title, body, created_at, last_post_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING *',
    );
    this.#replies = db.prepare<[number, number, number], ReplyRow>(
      'SELECT * FROM replies WHERE thread_id = ? AND id > ? ORDER BY id LIMIT ?',
    );
    this.#insertReply = db.prepare<[number, string, string, number], ReplyRow>(
      'INSERT INTO replies (thread_id, author_id, body, created_at) VALUES (?, ?, ?, ?) RETURNING *',
    );
    this.#bumpThread = db.prepare<[number, number]>(
      'UPDATE threads SET replies = replies + 1, last_post_at = ? WHERE id = ?',
    );
  }

  boards(): Board[] {
    return this.#boards.all();
  }

  board(id: string): Board | undefined {
    return this.#board.get(id);
  }

  /** A page of a board's threads, most recently active first; `cursor` is the last page's `next`. */
  threads(boardId: string, limit: number, cursor?: string): { threads: Thread[]; next: string | undefined } {
    const [at, id] = cursor === undefined ? [Number.MAX_SAFE_INTEGER, 0] : cursor.split('.').map(Number);
    const rows = this.#threads.all(
      boardId,
      at ?? 0,
      at ?? 0,
      cursor === undefined ? Number.MAX_SAFE_INTEGER : (id ?? 0),
      limit,
    );
    const last = rows[rows.length - 1];
    return {
      threads: rows.map(threadOf),
      next: rows.length === limit && last !== undefined ? `${last.last_post_at}.${last.id}` : undefined,
    };
  }

  thread(id: string): Thread | undefined {
    const row = this.#thread.get(Number(id));
    return row === undefined ? undefined : threadOf(row);
  }

  addThread(thread: { boardId: string; authorId: string; title: string; body: string }): Thread {
    const now = this.#now();
    return threadOf(
      this.#insertThread.get(thread.boardId, thread.authorId, thread.title, thread.body, now, now) as ThreadRow,
    );
  }

  /** A page of a thread's replies, oldest first, after reply id `after`. */
  replies(threadId: string, after: number, limit: number): Reply[] {
    return this.#replies.all(Number(threadId), after, limit).map(replyOf);
  }

  /** Adds a reply and counts it on its thread, in one transaction. */
  addReply(reply: { threadId: string; authorId: string; body: string }): Reply {
    const now = this.#now();
    return this.#db
      .transaction(() => {
        const row = this.#insertReply.get(Number(reply.threadId), reply.authorId, reply.body, now) as ReplyRow;
        this.#bumpThread.run(now, Number(reply.threadId));
        return replyOf(row);
      })
      .immediate();
  }
}
