import type { SqliteDatabase } from '@trellis/example-common';

/** A mail as its reader sees it. */
export interface Mail {
  readonly id: string;
  readonly toUserId: string;
  /** Who sent it: a service and what for ("forum: ada replied"). */
  readonly from: string;
  readonly subject: string;
  readonly body: string;
  /** ISO 8601. */
  readonly sentAt: string;
  /** ISO 8601; null while unread. */
  readonly readAt: string | null;
}

/**
 * The mail table: every user's mailbox, written only by services (see MailController.send). A
 * sender's idempotency key makes a send that is retried (its first attempt's answer lost) land
 * once.
 */
export const mailSchema = `
CREATE TABLE IF NOT EXISTS mail (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  to_user_id TEXT NOT NULL,
  sender TEXT NOT NULL,
  subject TEXT NOT NULL,
  body TEXT NOT NULL,
  sent_at INTEGER NOT NULL,
  read_at INTEGER,
  idempotency_key TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS mail_by_mailbox ON mail (to_user_id, id);
`;

interface MailRow {
  readonly id: number;
  readonly to_user_id: string;
  readonly sender: string;
  readonly subject: string;
  readonly body: string;
  readonly sent_at: number;
  readonly read_at: number | null;
}

const mailOf = (row: MailRow): Mail => ({
  id: String(row.id),
  toUserId: row.to_user_id,
  from: row.sender,
  subject: row.subject,
  body: row.body,
  sentAt: new Date(row.sent_at).toISOString(),
  readAt: row.read_at === null ? null : new Date(row.read_at).toISOString(),
});

/** Mailboxes in the service's SQLite file, shared by all its instances. */
export class MailStore {
  readonly #now: () => number;
  readonly #insert;
  readonly #byKey;
  readonly #page;
  readonly #one;
  readonly #markRead;
  readonly #unread;

  constructor(db: SqliteDatabase, options: { readonly now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
    this.#insert = db.prepare<[string, string, string, string, number, string | null], MailRow>(
      `INSERT INTO mail (to_user_id, sender, subject, body, sent_at, idempotency_key) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (idempotency_key) DO NOTHING RETURNING *`,
    );
    this.#byKey = db.prepare<[string], MailRow>('SELECT * FROM mail WHERE idempotency_key = ?');
    this.#page = db.prepare<[string, number, number], MailRow>(
      'SELECT * FROM mail WHERE to_user_id = ? AND id < ? ORDER BY id DESC LIMIT ?',
    );
    this.#one = db.prepare<[number, string], MailRow>('SELECT * FROM mail WHERE id = ? AND to_user_id = ?');
    this.#markRead = db.prepare<[number, number, string], MailRow>(
      'UPDATE mail SET read_at = coalesce(read_at, ?) WHERE id = ? AND to_user_id = ? RETURNING *',
    );
    this.#unread = db.prepare<[string], { n: number }>(
      'SELECT count(*) AS n FROM mail WHERE to_user_id = ? AND read_at IS NULL',
    );
  }

  /**
   * Stores a mail. With a key already used, nothing is stored and the mail first sent with it
   * is returned (`repeated`), whatever this one says.
   */
  send(
    mail: { toUserId: string; from: string; subject: string; body: string },
    key?: string,
  ): { mail: Mail; repeated: boolean } {
    const row = this.#insert.get(mail.toUserId, mail.from, mail.subject, mail.body, this.#now(), key ?? null);
    if (row !== undefined) return { mail: mailOf(row), repeated: false };
    return { mail: mailOf(this.#byKey.get(key as string) as MailRow), repeated: true };
  }

  /** Up to `limit` mails of a mailbox with ids below `before`, newest first. */
  page(userId: string, before: number, limit: number): Mail[] {
    return this.#page.all(userId, before, limit).map(mailOf);
  }

  unread(userId: string): number {
    return this.#unread.get(userId)?.n ?? 0;
  }

  /** One mail of the user's mailbox; undefined when it is not theirs or does not exist. */
  one(userId: string, id: string): Mail | undefined {
    const row = this.#one.get(Number(id), userId);
    return row === undefined ? undefined : mailOf(row);
  }

  /** Marks one mail read (once: the first time is kept). */
  markRead(userId: string, id: string): Mail | undefined {
    const row = this.#markRead.get(this.#now(), Number(id), userId);
    return row === undefined ? undefined : mailOf(row);
  }
}
