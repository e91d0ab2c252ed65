import { inject } from 'inversify';
import { z } from 'zod';
import type { FastifyRequest } from 'fastify';
import {
  AppTokens,
  Body,
  Bulkhead,
  Controller,
  Get,
  Header,
  HttpError,
  Param,
  Post,
  Put,
  Query,
  RateLimit,
  TrellisApp,
} from '@trellis/app';
import { hashPassword } from './passwords.js';
import { UsersStore, type Profile, type User } from './users-store.js';

/** A user name: what mentions (`@ada`) and sign-in use. */
export const userName = z.string().regex(/^[a-z0-9_-]{3,32}$/, 'must be 3 to 32 characters, each a-z, 0-9, "_" or "-"');

const signUp = z.strictObject({
  name: userName,
  password: z.string().min(8, 'must be at least 8 characters').max(200, 'must be at most 200 characters'),
});

const userId = z.string().regex(/^\d{1,15}$/, 'must be a user id (digits)');
// Behind the gateway, set from the session; absent when nobody is signed in.
const signedInId = userId.optional();
const names = z.union([userName, z.array(userName).max(20, 'at most 20 names at once')]).optional();

/**
 * A password costs 32 MiB and some 50 ms of a libuv thread to hash: per client (behind the
 * gateway, its `x-forwarded-for`), a few attempts a second; at most 4 at once per instance, as
 * many as libuv has threads, and 16 waiting (503 beyond, so the caller tries another instance).
 */
export const passwordRate = {
  ratePerSecond: 5,
  burst: 20,
  key: (request: FastifyRequest): string => {
    const forwarded = request.headers['x-forwarded-for'];
    return (typeof forwarded === 'string' ? forwarded.split(',')[0]?.trim() : undefined) || request.ip;
  },
};
export const passwordWork = { maxConcurrent: 4, maxQueue: 16, queueTimeoutMs: 2_000 };

/** What every answer carries: the instance that served it, to see load balancing from outside. */
type Served<T> = T & { readonly servedBy: string | undefined };

/**
 * Sign up, profiles, and look-up by name. The other services keep only user ids; names come
 * from here.
 */
@Controller('/users')
export class UsersController {
  constructor(
    @inject(AppTokens.app) private readonly app: TrellisApp,
    @inject(UsersStore) private readonly store: UsersStore,
  ) {}

  /** Sign up: 201 with the new user; a name taken is a 400 naming `body.name`. */
  @Post()
  @RateLimit(passwordRate)
  @Bulkhead(passwordWork)
  async signUp(@Body(signUp) body: z.infer<typeof signUp>): Promise<Served<{ user: User }>> {
    // Checked before the slow hash, and again by the insert (another instance may take it meanwhile).
    if (this.store.byName(body.name) !== undefined) throw nameTaken(body.name);
    const user = this.store.add(body.name, await hashPassword(body.password));
    if (user === undefined) throw nameTaken(body.name);
    return { user: { id: user.id, name: user.name }, servedBy: this.app.instance?.id };
  }

  /** `?name=ada&name=grace`: those users (unknown names left out); without names, a page of all. */
  @Get()
  list(
    @Query('name', names) wanted: string | string[] | undefined,
    @Query('after', z.coerce.number().int().min(0).default(0)) after: number,
    @Query('limit', z.coerce.number().int().min(1).max(100).default(20)) limit: number,
  ): Served<{ users: Profile[]; next: string | undefined }> {
    if (wanted !== undefined) {
      const found = [...new Set([wanted].flat())].flatMap((n) => this.store.byName(n) ?? []);
      return { users: found, next: undefined, servedBy: this.app.instance?.id };
    }
    const users = this.store.page(after, limit);
    const next = users.length === limit ? users[users.length - 1]?.id : undefined;
    return { users, next, servedBy: this.app.instance?.id };
  }

  /** The signed-in user's own profile. */
  @Get('/me')
  me(@Header('x-user-id', signedInId) id: string | undefined): Served<Profile> {
    return this.#profile(requireUser(id));
  }

  /** Changes the signed-in user's bio. */
  @Put('/me')
  update(
    @Header('x-user-id', signedInId) id: string | undefined,
    @Body(z.strictObject({ bio: z.string().max(500, 'must be at most 500 characters') })) body: { bio: string },
  ): Served<Profile> {
    const profile = this.store.setBio(requireUser(id), body.bio);
    if (profile === undefined) throw new HttpError(404, 'USER_NOT_FOUND', 'the signed-in user no longer exists');
    return { ...profile, servedBy: this.app.instance?.id };
  }

  @Get('/:id')
  one(@Param('id', userId) id: string): Served<Profile> {
    return this.#profile(id);
  }

  #profile(id: string): Served<Profile> {
    const profile = this.store.byId(id);
    if (profile === undefined) throw new HttpError(404, 'USER_NOT_FOUND', `no user with id "${id}"`);
    return { ...profile, servedBy: this.app.instance?.id };
  }
}

function nameTaken(name: string): HttpError {
  return new HttpError(400, 'NAME_TAKEN', `body "name": "${name}" is taken; choose another name`, {
    field: 'body.name',
  });
}

/** The signed-in user's id, from the gateway's `x-user-id`; 401 when nobody is signed in. */
export function requireUser(id: string | undefined): string {
  if (id === undefined) throw new HttpError(401, 'SIGNED_OUT', 'sign in first');
  return id;
}
