import { inject } from 'inversify';
import { z } from 'zod';
import {
  AppTokens,
  Body,
  Bulkhead,
  Controller,
  Delete,
  Get,
  HttpError,
  Param,
  Post,
  RateLimit,
  TrellisApp,
} from '@trellis/app';
import { passwordRate, passwordWork } from './users-controller.js';
import { verifyPassword } from './passwords.js';
import { UsersStore, type Session } from './users-store.js';

const signIn = z.strictObject({ name: z.string().max(32), password: z.string().max(200) });
const token = z.string().min(1).max(100);

/**
 * Sign in and out. The gateway checks every request's token with `GET /sessions/:token` and
 * passes the user on to the services as `x-user-id` and `x-user-name`.
 */
@Controller('/sessions')
export class SessionsController {
  constructor(
    @inject(AppTokens.app) private readonly app: TrellisApp,
    @inject(UsersStore) private readonly store: UsersStore,
  ) {}

  /** Sign in: 201 with a new token; 401 for a wrong name or password (which one is not said). */
  @Post()
  @RateLimit(passwordRate)
  @Bulkhead(passwordWork)
  async open(@Body(signIn) body: z.infer<typeof signIn>): Promise<Session & { servedBy: string | undefined }> {
    const account = this.store.credentials(body.name);
    // Verified even for an unknown name, so that the time taken does not tell which names exist.
    const right = await verifyPassword(body.password, account?.passwordHash ?? null);
    if (account === undefined || !right) throw new HttpError(401, 'WRONG_CREDENTIALS', 'wrong name or password');
    return { ...this.store.openSession(account.user), servedBy: this.app.instance?.id };
  }

  /** The user of a live session; 404 when the token is unknown or expired. */
  @Get('/:token')
  one(@Param('token', token) value: string): Omit<Session, 'token'> & { servedBy: string | undefined } {
    const session = this.store.session(value);
    if (session === undefined) throw new HttpError(404, 'SESSION_NOT_FOUND', 'no such session; sign in again');
    return { ...session, servedBy: this.app.instance?.id };
  }

  /** Sign out: 204, also when the session had ended already. */
  @Delete('/:token')
  close(@Param('token', token) value: string): void {
    this.store.closeSession(value);
  }
}
