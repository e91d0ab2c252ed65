import { inject } from 'inversify';
import { z } from 'zod';
import { AppTokens, Body, Controller, Get, Header, HttpError, Param, Post, Query, TrellisApp } from '@trellis/app';
import { MailStore, type Mail } from './mail-store.js';

const userId = z.string().regex(/^\d{1,15}$/, 'must be a user id (digits)');
const mailId = z.string().regex(/^\d{1,15}$/, 'must be a mail id (digits)');

/** What a service sends. */
export const outgoingMail = z.strictObject({
  toUserId: userId,
  from: z.string().min(1, 'must not be empty').max(64, 'must be at most 64 characters'),
  subject: z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters'),
  body: z.string().min(1, 'must not be empty').max(5_000, 'must be at most 5000 characters'),
});
export type OutgoingMail = z.infer<typeof outgoingMail>;

const idempotencyKey = z.string().min(1).max(200, 'must be at most 200 characters').optional();

type Served<T> = T & { readonly servedBy: string | undefined };

/**
 * Sending is for services only. The gateway adds `x-forwarded-for` to every request it passes
 * on, so a request carrying it came from a browser: refused, or anyone could mail anyone.
 */
@Controller('/mail')
export class MailController {
  constructor(
    @inject(AppTokens.app) private readonly app: TrellisApp,
    @inject(MailStore) private readonly store: MailStore,
  ) {}

  /**
   * Sends one mail: 201 with it; 403 when the request came through the gateway. With an
   * `Idempotency-Key` already used, nothing is sent again and the first mail is answered, with
   * `repeated: true`: so a sender may retry a send whose answer it lost.
   */
  @Post()
  send(
    @Header('x-forwarded-for') forwardedFor: string | undefined,
    @Header('idempotency-key', idempotencyKey) key: string | undefined,
    @Body(outgoingMail) mail: OutgoingMail,
  ): Served<{ mail: Mail; repeated: boolean }> {
    if (forwardedFor !== undefined) {
      throw new HttpError(403, 'SERVICES_ONLY', 'mail is sent by the services (forum, chat), not from a browser');
    }
    return { ...this.store.send(mail, key), servedBy: this.app.instance?.id };
  }
}

/** The signed-in user's mailbox: the user is the gateway's `x-user-id`. */
@Controller('/mailbox')
export class MailboxController {
  constructor(
    @inject(AppTokens.app) private readonly app: TrellisApp,
    @inject(MailStore) private readonly store: MailStore,
  ) {}

  /** Newest first, `limit` (at most 100) at a time; `next` is the `before` of the next page. */
  @Get()
  list(
    @Header('x-user-id', userId.optional()) id: string | undefined,
    @Query('before', z.coerce.number().int().min(1).optional()) before: number | undefined,
    @Query('limit', z.coerce.number().int().min(1).max(100).default(20)) limit: number,
  ): Served<{ mails: Mail[]; unread: number; next: string | undefined }> {
    const user = requireUser(id);
    const mails = this.store.page(user, before ?? Number.MAX_SAFE_INTEGER, limit);
    const next = mails.length === limit ? mails[mails.length - 1]?.id : undefined;
    return { mails, unread: this.store.unread(user), next, servedBy: this.app.instance?.id };
  }

  @Get('/:id')
  one(
    @Header('x-user-id', userId.optional()) id: string | undefined,
    @Param('id', mailId) mail: string,
  ): Served<{ mail: Mail }> {
    const found = this.store.one(requireUser(id), mail);
    if (found === undefined) throw notFound(mail);
    return { mail: found, servedBy: this.app.instance?.id };
  }

  /** Marks a mail read; 200 with it. */
  @Post('/:id/read')
  read(
    @Header('x-user-id', userId.optional()) id: string | undefined,
    @Param('id', mailId) mail: string,
  ): Served<{ mail: Mail }> {
    const found = this.store.markRead(requireUser(id), mail);
    if (found === undefined) throw notFound(mail);
    return { mail: found, servedBy: this.app.instance?.id };
  }
}

// Another user's mail is "not found" too: its existence is not the asker's business.
const notFound = (id: string): HttpError => new HttpError(404, 'MAIL_NOT_FOUND', `no mail ${id} in your mailbox`);

function requireUser(id: string | undefined): string {
  if (id === undefined) throw new HttpError(401, 'SIGNED_OUT', 'sign in to read your mail');
  return id;
}
