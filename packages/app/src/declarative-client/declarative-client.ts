import { ConfigError, UpstreamStatusError, type TrellisError } from '@trellis/core';
import type { CallOptions, ServiceClient } from '@trellis/client';
import { classMetadata, type ClassMetadata, type MethodMetadata } from '../decorators/metadata.js';
import { compilePath, scalar } from './request-template.js';

/** A class, as decorators and the container know it. */
// `any[]`: a class with constructor parameters must fit, and inversify's `Newable` is written so.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Constructor<T = object> = new (...args: any[]) => T;

/**
 * The cause a method's fallback stage answered with, carried as the reply's body so that the
 * method's own handler, which needs the call's arguments, makes the value.
 */
export class FallbackCause {
  constructor(readonly cause: TrellisError) {}
}

/** The service client a declarative method calls through: the app's, or one whose stages the method's policies set. */
export type ClientForMethod = (method: MethodMetadata, defaults: MethodMetadata) => ServiceClient;

/**
 * What a declarative client method's body returns, given the method's arguments (so that they
 * count as used); it never runs, since the instance the container makes replaces every
 * decorated method. Called, it rejects: the class was made with `new` instead of taken from the
 * app's container.
 *
 * @example
 * @Client('users')
 * class UsersClient {
 *   @Get('/users/:id')
 *   user(@Param('id') id: string): Promise<User> { return remoteCall(id); }
 * }
 */
export function remoteCall<T = never>(..._args: readonly unknown[]): Promise<T> {
  return Promise.reject(
    new ConfigError('Client', 'a declarative client made with `new` sends nothing: take it from the app container'),
  );
}

/** The service a class decorated with `@Client(service)` calls. */
export function clientService(type: Constructor): string {
  const service = classMetadata(type)?.client?.service;
  if (service === undefined) {
    throw new ConfigError(type.name || 'client', 'is not decorated with @Client(service)');
  }
  return service;
}

/**
 * Makes an instance of a `@Client` class whose decorated methods each send one governed call
 * through `clientFor(method)`: the path from `@Param`s, the query from `@Query`s, `@Body` as
 * JSON, `@Header`s, `@Signal` to cancel, `@Timeout` as the call's deadline, `@Retry(false)` for one
 * attempt. A method resolves to the decoded body of a 2xx answer.
 *
 * Each method is compiled here, once: a mistake in the decorators is found now, not at the first call.
 *
 * @throws ConfigError naming `Class.method` for a path parameter without its `@Param` (or the
 *   reverse), a controller-only decorator (`@Req`, a schema), or a class without `@Client`.
 */
export function createDeclarativeClient<T extends object>(type: Constructor<T>, clientFor: ClientForMethod): T {
  const metadata = classMetadata(type) as ClassMetadata;
  const service = clientService(type);
  const instance = Object.create(type.prototype as object) as Record<string | symbol, unknown>;
  for (const method of metadata.methods.values()) {
    if (method.route === undefined) continue;
    const where = `${type.name}.${String(method.key)}`;
    instance[method.key] = compileMethod(
      where,
      service,
      method,
      metadata.defaults,
      clientFor(method, metadata.defaults),
    );
  }
  return instance as T;
}

function compileMethod(
  where: string,
  service: string,
  method: MethodMetadata,
  defaults: MethodMetadata,
  client: ServiceClient,
): (...args: unknown[]) => Promise<unknown> {
  const route = method.route as NonNullable<MethodMetadata['route']>;
  let body: number | undefined;
  let signal: number | undefined;
  const headers: Array<{ readonly index: number; readonly name: string | undefined }> = [];
  for (const p of method.parameters) {
    if (p.schema !== undefined) {
      throw new ConfigError(`${where}`, `parameter ${p.index} has a schema: schemas check what a controller receives`);
    }
    if (p.source === 'req') throw new ConfigError(where, '@Req() is for controllers: a client sends no request object');
    if (p.source === 'body') body = p.index;
    else if (p.source === 'signal') signal = p.index;
    else if (p.source === 'header' || p.source === 'headers') headers.push({ index: p.index, name: p.name });
  }
  const pathOf = compilePath(where, route.path, method.parameters);
  const timeoutMs = method.timeoutMs ?? defaults.timeoutMs;
  const retry = method.retry ?? defaults.retry;
  const fallback = method.fallback ?? defaults.fallback;
  const fixed: CallOptions = {
    template: route.path,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    ...(retry === false ? { retry: false } : {}),
  };
  const verb = route.verb;

  return async (...args: unknown[]) => {
    const sent = headers.length === 0 ? undefined : headersOf(headers, args);
    const cancel = signal === undefined ? undefined : (args[signal] as AbortSignal | undefined);
    const reply = await client.request({
      ...fixed,
      method: verb,
      path: pathOf(args),
      ...(body === undefined ? {} : { body: args[body] }),
      ...(sent === undefined ? {} : { headers: sent }),
      ...(cancel === undefined ? {} : { signal: cancel }),
    });
    if (fallback !== undefined && reply.body instanceof FallbackCause) return fallback(reply.body.cause, args);
    if (reply.status < 200 || reply.status > 299) {
      throw new UpstreamStatusError(service, reply.instance.id, reply.status, reply.body);
    }
    return reply.body;
  };
}

function headersOf(
  headers: ReadonlyArray<{ readonly index: number; readonly name: string | undefined }>,
  args: readonly unknown[],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { index, name } of headers) {
    const value = args[index];
    if (value === undefined || value === null) continue;
    if (name !== undefined) out[name] = scalar(`header ${name}`, value);
    else
      for (const [key, v] of Object.entries(value as Record<string, unknown>))
        out[key.toLowerCase()] = scalar(`header ${key}`, v);
  }
  return out;
}
