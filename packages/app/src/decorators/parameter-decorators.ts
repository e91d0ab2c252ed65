import type { ZodType } from 'zod';
import { ConfigError } from '@trellis/core';
import { ownMethodMetadata, type ParameterSource } from './metadata.js';

function bind(source: ParameterSource, name: string | undefined, schema: ZodType | undefined): ParameterDecorator {
  return (target, key, index) => {
    if (key === undefined) throw new ConfigError(source, 'decorates a method parameter, not a constructor parameter');
    const parameters = ownMethodMetadata(target.constructor, key).parameters;
    parameters.push({ index, source, name, schema });
    parameters.sort((a, b) => a.index - b.index);
  };
}

// `@Param('id', schema)`, `@Param('id')`, `@Param(schema)` or `@Param()`.
function named(source: ParameterSource) {
  return (nameOrSchema?: string | ZodType, schema?: ZodType): ParameterDecorator =>
    typeof nameOrSchema === 'string' || nameOrSchema === undefined
      ? bind(source, nameOrSchema, schema)
      : bind(source, undefined, nameOrSchema);
}

/** A path parameter by name (`@Param('id')`), or all of them; checked by `schema` when given. */
export const Param = named('param');
/** A query parameter by name, or the whole query object; checked by `schema` when given. */
export const Query = named('query');

/** The request body (a controller) or the body sent (a client); checked by `schema` when given. */
export function Body(schema?: ZodType): ParameterDecorator {
  return bind('body', undefined, schema);
}

/** One header by name (lower case): read by a controller, sent by a client. */
export function Header(name: string, schema?: ZodType): ParameterDecorator {
  if (typeof name !== 'string' || name === '') throw new ConfigError('Header.name', 'must be a header name');
  return bind('header', name.toLowerCase(), schema);
}

/** All request headers (a controller), checked by `schema` when given. */
export function Headers(schema?: ZodType): ParameterDecorator {
  return bind('headers', undefined, schema);
}

/** The Fastify request itself (a controller). */
export function Req(): ParameterDecorator {
  return bind('req', undefined, undefined);
}

/**
 * The request's signal (a controller): it aborts when the caller goes away or the deadline (the
 * caller's, or `@Timeout`) passes. On a client method, a signal that cancels the call.
 */
export function Signal(): ParameterDecorator {
  return bind('signal', undefined, undefined);
}
