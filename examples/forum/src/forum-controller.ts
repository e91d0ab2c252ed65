import { inject } from 'inversify';
import { z } from 'zod';
import { AppTokens, Body, Controller, Get, Header, HttpError, Param, Post, Query, TrellisApp } from '@trellis/app';
import { UpstreamStatusError } from '@trellis/core';
import type { ServiceConfig } from '@trellis/config';
import { ForumStore, type Board, type Reply, type Thread } from './forum-store.js';
import { MailClient } from './mail-client.js';
import { UsersClient } from './users-client.js';
import type { forumSettings } from './forum-settings.js';

/** A user as the forum shows one: the name comes from the users service. */
export interface AuthorView {
  readonly id: string;
  readonly name: string;
}

export type ThreadView = Omit<Thread, 'authorId'> & { readonly author: AuthorView };
export type ReplyView = Omit<Reply, 'authorId'> & { readonly author: AuthorView };

const id = z.string().regex(/^\d{1,15}$/, 'must be an id (digits)');
const boardId = z.string().regex(/^[a-z0-9-]{1,32}$/, 'must be a board id such as "general"');
const signedIn = {
  id: id.optional(),
  // Set by the gateway from the session; only used to sign notifications.
  name: z.string().max(64).optional(),
};
const text = (max: number) =>
  z
    .string()
    .refine((s) => s.trim() !== '', 'must not be empty')
    .refine((s) => s.length <= max, `must be at most ${max} characters`);
const newThread = z.strictObject({ title: text(200), body: text(10_000) });
const newReply = z.strictObject({ body: text(10_000) });
const limit = z.coerce.number().int().min(1).max(100).optional();

type Served<T> = T & {
  /** The forum instance that answered. */
  readonly servedBy: string | undefined;
  /** The users instances that answered for the authors' names, one per call. */
  readonly usersServedBy: readonly string[];
};

/**
 * Boards, threads and replies. Posting needs a signed-in user (the gateway's `x-user-id`); what
 * is posted is stored as typed, HTML included, and the pages show it as text.
 */
@Controller()
export class ForumController {
  constructor(
    @inject(AppTokens.app) private readonly app: TrellisApp,
    @inject(ForumStore) private readonly store: ForumStore,
    @inject(UsersClient) private readonly users: UsersClient,
    @inject(MailClient) private readonly mail: MailClient,
    @inject(AppTokens.config) private readonly settings: ServiceConfig<typeof forumSettings>,
  ) {}

  @Get('/boards')
  boards(): { boards: Board[]; servedBy: string | undefined } {
    return { boards: this.store.boards(), servedBy: this.app.instance?.id };
  }

  /** A board and a page of its threads, most recently active first. */
  @Get('/boards/:board/threads')
  async threads(
    @Param('board', boardId) board: string,
    @Query('limit', limit) limit: number | undefined,
    @Query(
      'cursor',
      z
        .string()
        .regex(/^\d{1,16}\.\d{1,15}$/)
        .optional(),
    )
    cursor: string | undefined,
  ): Promise<Served<{ board: Board; threads: ThreadView[]; next: string | undefined }>> {
    const found = this.#board(board);
    const count = limit ?? this.settings.get('pageSize');
    const page = this.store.threads(board, count, cursor);
    const { authors, servedBy } = await this.#authors(page.threads.map((t) => t.authorId));
    return {
      board: found,
      threads: page.threads.map((t) => withAuthor(t, authors)),
      next: page.next,
      servedBy: this.app.instance?.id,
      usersServedBy: servedBy,
    };
  }

  /** Starts a thread: 201 with it. */
  @Post('/boards/:board/threads')
  async post(
    @Param('board', boardId) board: string,
    @Header('x-user-id', signedIn.id) userId: string | undefined,
    @Body(newThread) body: z.infer<typeof newThread>,
  ): Promise<Served<{ thread: ThreadView }>> {
    const author = requireUser(userId);
    this.#board(board);
    const thread = this.store.addThread({ boardId: board, authorId: author, title: body.title, body: body.body });
    const { authors, servedBy } = await this.#authors([author]);
    return { thread: withAuthor(thread, authors), servedBy: this.app.instance?.id, usersServedBy: servedBy };
  }

  /**
   * A thread and a page of its replies, oldest first; every author's name asked of users (one
   * call per author, load balanced). `authorServedBy` is the users instance that named the
   * thread's author.
   */
  @Get('/threads/:id')
  async thread(
    @Param('id', id) threadId: string,
    @Query('after', z.coerce.number().int().min(0).default(0)) after: number,
    @Query('limit', limit) limit: number | undefined,
  ): Promise<
    Served<{ thread: ThreadView; replies: ReplyView[]; next: string | undefined; authorServedBy: string | undefined }>
  > {
    const thread = this.#thread(threadId);
    const count = limit ?? this.settings.get('pageSize');
    const replies = this.store.replies(threadId, after, count);
    const { authors, servedBy, byAuthor } = await this.#authors([thread.authorId, ...replies.map((r) => r.authorId)]);
    const last = replies[replies.length - 1];
    return {
      thread: withAuthor(thread, authors),
      replies: replies.map((r) => withAuthor(r, authors)),
      next: replies.length === count && last !== undefined ? last.id : undefined,
      servedBy: this.app.instance?.id,
      usersServedBy: servedBy,
      authorServedBy: byAuthor.get(thread.authorId),
    };
  }

  /**
   * Replies: 201 with the reply. The thread's author is mailed (not when replying to oneself, nor
   * while the `notifyByMail` setting is off);
   * `notified` says whether that mail went, since the reply stands even when mail is down.
   */
  @Post('/threads/:id/replies')
  async reply(
    @Param('id', id) threadId: string,
    @Header('x-user-id', signedIn.id) userId: string | undefined,
    @Header('x-user-name', signedIn.name) userName: string | undefined,
    @Body(newReply) body: z.infer<typeof newReply>,
  ): Promise<Served<{ reply: ReplyView; notified: boolean }>> {
    const author = requireUser(userId);
    const thread = this.#thread(threadId);
    const reply = this.store.addReply({ threadId, authorId: author, body: body.body });
    const { authors, servedBy } = await this.#authors([author]);
    const name = authors.get(author)?.name ?? userName ?? 'someone';
    let notified = false;
    if (thread.authorId !== author && this.settings.get('notifyByMail')) {
      try {
        await this.mail.send(
          {
            toUserId: thread.authorId,
            from: `forum: ${name}`,
            subject: `${name} replied to "${clip(thread.title, 120)}"`,
            body: `${clip(body.body, 4_000)}\n\n— in the thread /forum/#/threads/${thread.id}`,
          },
          `forum-reply-${reply.id}`,
        );
        notified = true;
      } catch (error) {
        this.app.http.log.warn({ err: error, thread: thread.id }, 'reply stored, but its notification mail failed');
      }
    }
    return { reply: withAuthor(reply, authors), notified, servedBy: this.app.instance?.id, usersServedBy: servedBy };
  }

  #board(board: string): Board {
    const found = this.store.board(board);
    if (found === undefined) throw new HttpError(404, 'BOARD_NOT_FOUND', `no board "${board}"`);
    return found;
  }

  #thread(threadId: string): Thread {
    const thread = this.store.thread(threadId);
    if (thread === undefined) throw new HttpError(404, 'THREAD_NOT_FOUND', `no thread ${threadId}`);
    return thread;
  }

  // Each distinct author once, in parallel. A users failure fails the answer (the app answers
  // 503 naming users); an id users does not know (data of another users database) shows as such.
  async #authors(ids: readonly string[]): Promise<{
    authors: Map<string, AuthorView>;
    servedBy: string[];
    byAuthor: Map<string, string>;
  }> {
    const distinct = [...new Set(ids)];
    const found = await Promise.all(
      distinct.map(async (authorId) => {
        try {
          const user = await this.users.user(authorId);
          return { author: { id: user.id, name: user.name }, servedBy: user.servedBy };
        } catch (error) {
          if (error instanceof UpstreamStatusError && error.status === 404) {
            return { author: { id: authorId, name: `(unknown user ${authorId})` }, servedBy: undefined };
          }
          throw error;
        }
      }),
    );
    const byAuthor = new Map<string, string>();
    for (const f of found) if (f.servedBy !== undefined) byAuthor.set(f.author.id, f.servedBy);
    return {
      authors: new Map(found.map((f) => [f.author.id, f.author])),
      servedBy: found.flatMap((f) => (f.servedBy === undefined ? [] : [f.servedBy])),
      byAuthor,
    };
  }
}

function withAuthor<T extends { readonly authorId: string }>(
  item: T,
  authors: Map<string, AuthorView>,
): Omit<T, 'authorId'> & { author: AuthorView } {
  const { authorId, ...rest } = item;
  return { ...rest, author: authors.get(authorId) ?? { id: authorId, name: `(unknown user ${authorId})` } };
}

function requireUser(userId: string | undefined): string {
  if (userId === undefined) throw new HttpError(401, 'SIGNED_OUT', 'sign in to post');
  return userId;
}

const clip = (s: string, max: number): string => (s.length <= max ? s : `${s.slice(0, max - 1)}…`);
