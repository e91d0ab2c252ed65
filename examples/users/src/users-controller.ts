import { inject } from 'inversify';
import { z } from 'zod';
import { AppTokens, Controller, Get, HttpError, Param, RateLimit, TrellisApp } from '@trellis/app';
import { users, type User } from './users.js';

/** A user as the service answers it, with the instance that answered: load balancing, seen from outside. */
export interface UserView extends User {
  readonly servedBy: string | undefined;
}

@Controller('/users')
export class UsersController {
  constructor(@inject(AppTokens.app) private readonly app: TrellisApp) {}

  @Get()
  all(): { users: readonly User[]; servedBy: string | undefined } {
    return { users, servedBy: this.app.instance?.id };
  }

  // A bad id is answered 400 naming `params.id` before this runs; beyond the rate, 429.
  @Get('/:id')
  @RateLimit({ ratePerSecond: 500, burst: 500 })
  one(@Param('id', z.string().regex(/^\d+$/, 'must be a number')) id: string): UserView {
    const user = users.find((u) => u.id === id);
    if (user === undefined) throw new HttpError(404, 'NOT_FOUND', `no user with id "${id}"`);
    return { ...user, servedBy: this.app.instance?.id };
  }
}
