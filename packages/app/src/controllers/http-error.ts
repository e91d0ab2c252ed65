import { ConfigError } from '@trellis/core';

// From the global registry, so that `HttpError.is()` recognises one thrown by another copy of the package.
const brand = Symbol.for('@trellis/app.HttpError');

/**
 * An answer a controller method gives by throwing: the app answers `status` with
 * `{ error: code, message }`, as it answers its own refusals (`{ error: "RATE_LIMITED", … }`).
 * With `field`, the answer names the input at fault as a validation 400 does (`field: "body.name"`),
 * for a verdict no schema can give (a name already taken).
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
 * // A 400 that names the field, like the schemas' own: `{ error, message, field: "body.name" }`.
 * const taken = new HttpError(400, 'NAME_TAKEN', 'body "name": "ada" is taken', { field: 'body.name' });
 */
export class HttpError extends Error {
  /** The HTTP status answered, 400 to 599. */
  readonly status: number;
  /** A stable code for callers to match on, e.g. "USER_NOT_FOUND". */
  readonly code: string;
  /** The input at fault, as a path from where it was (`body.name`, `params.id`); answered as `field`. */
  readonly field: string | undefined;

  constructor(status: number, code: string, message: string, options: { readonly field?: string } = {}) {
    super(message);
    if (!(Number.isInteger(status) && status >= 400 && status <= 599)) {
      throw new ConfigError('HttpError.status', `must be an integer from 400 to 599, got ${status}`);
    }
    if (typeof code !== 'string' || code === '') throw new ConfigError('HttpError.code', 'must be a non-empty string');
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    this.field = options.field;
    Object.defineProperty(this, brand, { value: true });
  }

  /** True for an HttpError, from this copy of the package or another. */
  static is(error: unknown): error is HttpError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[brand] === true;
  }
}
