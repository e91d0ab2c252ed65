import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ZodType } from 'zod';
import type { ParameterBinding, ParameterSource } from '../decorators/metadata.js';

/** Reads a method's arguments from a request; undefined once it has answered 400 for one of them. */
export type ArgumentsReader = (request: FastifyRequest, reply: FastifyReply) => unknown[] | undefined;

interface Extractor {
  readonly index: number;
  readonly read: (request: FastifyRequest) => unknown;
  readonly schema: ZodType | undefined;
  /** Where the value was, for the 400's field ("params.id") and message ("path parameter \"id\""). */
  readonly root: string;
  readonly label: string;
  readonly name: string | undefined;
}

// What a user calls each place in a 400's message, and its root in the field path.
const places: Record<Exclude<ParameterSource, 'req' | 'signal'>, { readonly root: string; readonly label: string }> = {
  param: { root: 'params', label: 'path parameter' },
  query: { root: 'query', label: 'query parameter' },
  body: { root: 'body', label: 'body' },
  header: { root: 'headers', label: 'header' },
  headers: { root: 'headers', label: 'headers' },
};

const readParams = (request: FastifyRequest): unknown => request.params;
const readQuery = (request: FastifyRequest): unknown => request.query;
const readBody = (request: FastifyRequest): unknown => request.body;
const readHeaders = (request: FastifyRequest): unknown => request.headers;
const readRequest = (request: FastifyRequest): unknown => request;
// After `@Timeout` has tightened it, when the method has one.
const readSignal = (request: FastifyRequest): unknown => request.inbound.signal;

function reader(binding: ParameterBinding): (request: FastifyRequest) => unknown {
  const name = binding.name;
  switch (binding.source) {
    case 'param':
      return name === undefined ? readParams : (request) => (request.params as Record<string, unknown>)[name];
    case 'query':
      return name === undefined ? readQuery : (request) => (request.query as Record<string, unknown>)[name];
    case 'body':
      return readBody;
    case 'header':
      return name === undefined ? readHeaders : (request) => request.headers[name];
    case 'headers':
      return readHeaders;
    case 'req':
      return readRequest;
    case 'signal':
      return readSignal;
  }
}

/**
 * Compiles a method's parameter bindings, once per route, into one function that reads and checks
 * its arguments per request: each value from its place, then its zod schema's `safeParse`, whose
 * output (coerced, defaulted) is what the method gets. The first failing value is answered 400
 * `{ error: "INVALID_REQUEST", message, field }`, with the field as a path ("body.tags[1]").
 */
export function argumentsReader(parameters: readonly ParameterBinding[]): ArgumentsReader {
  const extractors: Extractor[] = parameters.map((binding) => {
    const place = binding.source === 'req' || binding.source === 'signal' ? undefined : places[binding.source];
    return {
      index: binding.index,
      read: reader(binding),
      schema: binding.schema,
      root: place?.root ?? binding.source,
      label: place?.label ?? binding.source,
      name: binding.name,
    };
  });
  const length = parameters.reduce((max, p) => Math.max(max, p.index + 1), 0);
  const count = extractors.length;
  return (request, reply) => {
    const args = new Array<unknown>(length);
    for (let i = 0; i < count; i++) {
      const extractor = extractors[i] as Extractor;
      const value = extractor.read(request);
      if (extractor.schema === undefined) {
        args[extractor.index] = value;
        continue;
      }
      const parsed = extractor.schema.safeParse(value);
      if (!parsed.success) {
        answerInvalid(reply, extractor, parsed.error.issues);
        return undefined;
      }
      args[extractor.index] = parsed.data;
    }
    return args;
  };
}

interface Issue {
  readonly code?: string;
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly keys?: readonly string[];
}

function answerInvalid(reply: FastifyReply, extractor: Extractor, issues: readonly Issue[]): void {
  // An unknown key first: a typo ("titel") also makes the real key look missing.
  const issue = issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0];
  const path: PropertyKey[] = extractor.name === undefined ? [] : [extractor.name];
  if (issue !== undefined) path.push(...issue.path);
  const unknownKey = issue?.code === 'unrecognized_keys' ? issue.keys?.[0] : undefined;
  if (unknownKey !== undefined) path.push(unknownKey);
  const below = pathText(path);
  const problem = unknownKey !== undefined ? 'unknown key' : (issue?.message ?? 'invalid');
  void reply.code(400).send({
    error: 'INVALID_REQUEST',
    message: below === '' ? `${extractor.label}: ${problem}` : `${extractor.label} "${below}": ${problem}`,
    field:
      below === ''
        ? extractor.root
        : below.startsWith('[')
          ? `${extractor.root}${below}`
          : `${extractor.root}.${below}`,
  });
}

// ["tags", 1, "name"] → "tags[1].name"
function pathText(path: readonly PropertyKey[]): string {
  let text = '';
  for (const part of path) {
    if (typeof part === 'number') text += `[${part}]`;
    else text += text === '' ? String(part) : `.${String(part)}`;
  }
  return text;
}
