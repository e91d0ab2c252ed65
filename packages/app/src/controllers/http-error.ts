import { ConfigError } from '@trellis/core';

// From the global registry, so that `HttpError.is()` recognises one thrown by another copy of the package.
const brand = Symbol.for('@trellis/app.HttpError');

/**
 * An answer a controller method gives by throwing: the app answers `status` with
 * `{ error: code, message }`, as it answers its own refusals (`{ error: "RATE_LIMITED", … }`).
 * Not a `TrellisError`: those say that governance failed, this is the service's own verdict
 * ("no such user"), and its code is the service's to choose.
 *
 * @throws ConfigError from the constructor for a status outside 400–599 or an empty code.
 * @example
 * // In a controller method: `@Get('/:id') one(@Param('id') id: string): User { … }`
 * function one(id: string): User {
 *   const user = cache.get(id) as User | undefined;
 *   if (user === undefined) throw new HttpError(404, 'USER_NOT_FOUND', `no user "${id}"`);
 *   return user;
 * }
 */
export class HttpError extends Error {
  /** The HTTP status answered, 400 to 599. */
  readonly status: number;
  /** A stable code for callers to match on, e.g. "USER_NOT_FOUND". */
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    if (!(Number.isInteger(status) && status >= 400 && status <= 599)) {
      throw new ConfigError('HttpError.status', `must be an integer from 400 to 599, got ${status}`);
    }
    if (typeof code !== 'string' || code === '') throw new ConfigError('HttpError.code', 'must be a non-empty string');
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    Object.defineProperty(this, brand, { value: true });
  }

  /** True for an HttpError, from this copy of the package or another. */
  static is(error: unknown): error is HttpError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[brand] === true;
  }
}
