import type { IncomingHttpHeaders } from 'node:http';
import { ConfigError, type Clock } from '@trellis/core';
import type { ServiceClient } from '@trellis/client';

/** Where the gateway checks a session token. */
export interface AuthOptions {
  /** The service that knows sessions, e.g. "users". */
  readonly service: string;
  /** The path that answers for one token, with `{token}` where it goes, e.g. "/sessions/{token}". */
  readonly path: string;
  /** A valid session is remembered this long before it is asked about again; default 5 000 ms. */
  readonly cacheMs?: number;
  /** Most sessions remembered; past it the oldest goes. Default 10 000. */
  readonly maxSessions?: number;
  /** The check gives up after this long (the session counts as unavailable); default 2 000 ms. */
  readonly timeoutMs?: number;
}

/** The user a session belongs to, as the session service answered. */
export interface SessionUser {
  readonly id: string;
  readonly name: string;
}

/** What a check found: a user, no (valid) session, or no answer from the session service. */
export type SessionResult =
  | { readonly kind: 'valid'; readonly user: SessionUser }
  | { readonly kind: 'none' }
  | { readonly kind: 'unavailable'; readonly reason: string };

/** An answer the gateway gives instead of proxying: a status, a code and a message, in the app's `{ error, message }` shape. */
export interface Refusal {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}

const none: SessionResult = { kind: 'none' };
// A token is an opaque word; anything else is not one of ours and is never sent on.
const tokenShape = /^[A-Za-z0-9._~+/=-]{1,512}$/;

/**
 * The session token of a request: `Authorization: Bearer <token>`, else the `session` cookie.
 * @returns undefined when there is none, or it is not shaped like a token.
 */
export function sessionToken(headers: IncomingHttpHeaders): string | undefined {
  const authorization = headers.authorization;
  if (authorization !== undefined && /^bearer\s/i.test(authorization)) {
    const token = authorization.slice(7).trim();
    return tokenShape.test(token) ? token : undefined;
  }
  const cookie = headers.cookie;
  if (cookie === undefined) return undefined;
  for (const part of cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1 || part.slice(0, eq).trim() !== 'session') continue;
    let token = part.slice(eq + 1).trim();
    try {
      token = decodeURIComponent(token);
    } catch {
      return undefined;
    }
    return tokenShape.test(token) ? token : undefined;
  }
  return undefined;
}

/**
 * Checks session tokens against the session service through a governed client, and remembers
 * valid sessions for a few seconds (a bounded map, on the injected clock), so that a page's
 * burst of requests costs one check. A 200 answer `{ user: { id, name } }` is a valid session;
 * any other 2xx or 4xx answer means none; a 5xx, a timeout or no instance means the check is
 * unavailable.
 */
export class SessionCheck {
  readonly service: string;
  readonly #client: ServiceClient;
  readonly #path: string;
  readonly #clock: Clock;
  readonly #cacheMs: number;
  readonly #maxSessions: number;
  readonly #timeoutMs: number;
  readonly #cache = new Map<string, { readonly user: SessionUser; readonly until: number }>();

  constructor(client: ServiceClient, options: AuthOptions, clock: Clock) {
    if (!options.path.includes('{token}')) throw new ConfigError('auth.path', 'must contain "{token}"');
    this.service = options.service;
    this.#client = client;
    this.#path = options.path;
    this.#clock = clock;
    this.#cacheMs = options.cacheMs ?? 5_000;
    this.#maxSessions = options.maxSessions ?? 10_000;
    this.#timeoutMs = options.timeoutMs ?? 2_000;
    if (!(Number.isFinite(this.#cacheMs) && this.#cacheMs >= 0)) {
      throw new ConfigError('auth.cacheMs', `must be a number of milliseconds >= 0, got ${this.#cacheMs}`);
    }
    if (!(Number.isInteger(this.#maxSessions) && this.#maxSessions >= 1)) {
      throw new ConfigError('auth.maxSessions', `must be an integer >= 1, got ${this.#maxSessions}`);
    }
  }

  /** Sessions remembered now. */
  get cached(): number {
    return this.#cache.size;
  }

  /** Checks the request's token (see {@link sessionToken}). */
  async check(headers: IncomingHttpHeaders): Promise<SessionResult> {
    const token = sessionToken(headers);
    if (token === undefined) return none;
    const now = this.#clock.now();
    const hit = this.#cache.get(token);
    if (hit !== undefined) {
      if (hit.until > now) return { kind: 'valid', user: hit.user };
      this.#cache.delete(token);
    }
    let reply;
    try {
      reply = await this.#client.request({
        path: this.#path.replace('{token}', encodeURIComponent(token)),
        timeoutMs: this.#timeoutMs,
      });
    } catch (error) {
      return { kind: 'unavailable', reason: error instanceof Error ? error.message : String(error) };
    }
    if (reply.status >= 500) return { kind: 'unavailable', reason: `${this.service} answered ${reply.status}` };
    const user = reply.status === 200 ? userOf(reply.body) : undefined;
    if (user === undefined) return none;
    if (this.#cacheMs > 0) {
      // Oldest first in a Map: past the cap, the first entry goes.
      if (this.#cache.size >= this.#maxSessions) this.#cache.delete(this.#cache.keys().next().value as string);
      this.#cache.set(token, { user, until: now + this.#cacheMs });
    }
    return { kind: 'valid', user };
  }

  /** Forgets every remembered session (a sign-out elsewhere takes effect at once). */
  clear(): void {
    this.#cache.clear();
  }
}

function userOf(body: unknown): SessionUser | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const user = (body as { user?: unknown }).user;
  if (typeof user !== 'object' || user === null) return undefined;
  const { id, name } = user as { id?: unknown; name?: unknown };
  if (typeof id !== 'string' || id === '' || typeof name !== 'string') return undefined;
  return { id, name };
}
