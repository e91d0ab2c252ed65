import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { mayRead } from '../acl/acl-enforcement.js';
import { keyNeed, methodNotAllowed, type RouteAcl } from '../acl/route-acl.js';
import { BadQueryParamError, parseBlockingParams, type Topic } from '../http/blocking-query.js';
import { clientGone, consistencyHeaders, firstValue, query, text } from '../http/consul-http.js';
import { randomUUID } from 'node:crypto';
import { checkedFlags, maxKvFlags, tooLarge, type KvEntry, type KvFlags } from './kv-store.js';
import type { ServerContext } from '../http/server-context.js';

const path = '/v1/kv/*';

// A single key needs read on it; listings need nothing and are cut down key by key to what the
// token may read (Consul's default, without acl.enable_key_list_policy).
const kvRead: RouteAcl = {
  needs: (request) => {
    const q = query(request);
    return q['recurse'] !== undefined || q['keys'] !== undefined ? [] : [keyNeed(keyOf(request), 'read')];
  },
};
const kvWrite: RouteAcl = { needs: (request) => [keyNeed(keyOf(request), 'write')] };
// A recursive delete needs write on every key under the prefix.
const kvDelete: RouteAcl = {
  needs: (request) => [keyNeed(keyOf(request), 'write', query(request)['recurse'] !== undefined)],
};

/**
 * `/v1/kv/<key>`: Consul's key/value store. GET reads a key (`?raw` for its bytes alone), a
 * prefix (`?recurse`) or the keys under a prefix (`?keys`, `?separator`), as blocking queries;
 * PUT writes the raw body (`?flags`, `?cas`), or takes or frees a key's lock for a session with it
 * (`?acquire=<session>`, `?release=<session>`); DELETE removes a key or a prefix (`?recurse`,
 * `?cas`). PUT and DELETE answer `true` or `false` (a check-and-set that did not hold, a lock
 * held by another session or within its lock delay, a release by a session not holding it).
 *
 * The routes live in a Fastify scope of their own, whose body parser reads bytes whatever the
 * content type and up to the store's value limit, so that binary values round-trip while the
 * other routes keep reading text.
 */
export function registerKvApi(app: FastifyInstance, { kv, blocking, sessions }: ServerContext): void {
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: kv.maxValueSize }, (_request, body, done) =>
      done(null, body),
    );
    scope.setErrorHandler((error: FastifyError, request, reply) => {
      if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        const length = Number(request.headers['content-length']);
        return text(reply, 413, tooLarge(Number.isSafeInteger(length) ? length : undefined, kv.maxValueSize));
      }
      // The server's own handler answers the rest (400 for a bad query parameter, ...).
      throw error;
    });

    scope.get(path, { config: { acl: kvRead } }, async (request, reply) => {
      const key = keyOf(request);
      const q = query(request);
      // Consul reads these flags by presence alone: ?recurse=false still recurses.
      const keysOnly = q['keys'] !== undefined;
      const recurse = q['recurse'] !== undefined;
      if (key === '' && !keysOnly && !recurse) return text(reply, 400, 'Missing key name');
      const params = parseBlockingParams(q);
      const signal = clientGone(reply);

      if (keysOnly) {
        // "seperator" is the spelling Consul first shipped, and still reads.
        const separator = firstValue(request, 'separator') ?? firstValue(request, 'seperator') ?? '';
        await blocking.wait(params, () => kv.prefixIndex(key), under(key), signal);
        const keys = kv.keys(key, separator).filter(mayRead(request, 'key'));
        reply.headers(consistencyHeaders(kv.prefixIndex(key)));
        // As in Consul: the root answers an empty list, a prefix with nothing under it 404.
        if (keys.length === 0 && key !== '') return reply.code(404).send();
        return json(reply, keys);
      }

      if (recurse) {
        await blocking.wait(params, () => kv.prefixIndex(key), under(key), signal);
        const readable = mayRead(request, 'key');
        const entries = kv.list(key).filter((entry) => readable(entry.key));
        reply.headers(consistencyHeaders(kv.prefixIndex(key)));
        if (entries.length === 0) return reply.code(404).send();
        return json(
          reply,
          entries.map((entry) => entryJson(entry)),
        );
      }

      const topic = `kv:${key}`;
      await blocking.wait(
        params,
        () => kv.keyIndex(key),
        (t) => t === topic,
        signal,
      );
      const entry = kv.get(key);
      reply.headers(consistencyHeaders(kv.keyIndex(key)));
      if (entry === undefined) return reply.code(404).send();
      if (q['raw'] !== undefined) {
        // Consul's headers for ?raw: a stored value is never sniffed and run as a page.
        return reply
          .code(200)
          .headers({ 'X-Content-Type-Options': 'nosniff', 'Content-Security-Policy': 'sandbox' })
          .type('text/plain')
          .send(entry.value);
      }
      return json(reply, [entryJson(entry)]);
    });

    scope.put(path, { config: { acl: kvWrite } }, async (request, reply) => {
      const q = query(request);
      const key = keyOf(request);
      if (key === '') return text(reply, 400, 'Missing key name');
      // As Consul: at most one of these, since each makes the write another operation.
      if (['cas', 'acquire', 'release'].filter((flag) => q[flag] !== undefined).length > 1) {
        return text(reply, 400, `Conflicting flags: ${encodeQuery(q)}`);
      }
      const flags = flagsParam(request);
      const cas = uintParam(request, 'cas');
      // No body at all (no content type, no length) is an empty value, as in Consul.
      const value = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const acquire = firstValue(request, 'acquire');
      if (acquire !== undefined) {
        // Within a lock delay, the lock is refused (false), as Consul's leader does it.
        if (sessions.lockDelayUntil(key) !== undefined) return json(reply, false);
        return json(
          reply,
          kv.lock(key, value, acquire, flags, (id) => sessions.has(id)),
        );
      }
      const release = firstValue(request, 'release');
      if (release !== undefined) return json(reply, kv.unlock(key, value, release, flags));
      const done = kv.set(key, value, {
        ...(flags === undefined ? {} : { flags }),
        ...(cas === undefined ? {} : { cas }),
      });
      return json(reply, done);
    });

    scope.delete(path, { config: { acl: kvDelete } }, async (request, reply) => {
      const cas = uintParam(request, 'cas');
      const done = kv.delete(keyOf(request), {
        recurse: query(request)['recurse'] !== undefined,
        ...(cas === undefined ? {} : { cas }),
      });
      return json(reply, done);
    });

    scope.route({
      method: ['POST', 'PATCH', 'OPTIONS'],
      url: path,
      config: { acl: methodNotAllowed },
      handler: async (request, reply) =>
        text(reply.header('Allow', 'GET, PUT, DELETE'), 405, `method ${request.method} not allowed`),
    });
  });
}

// The router has already decoded the percent-encoding, %2F included, as Go does for Consul.
function keyOf(request: FastifyRequest): string {
  return (request.params as { '*': string })['*'];
}

function under(prefix: string): (topic: Topic) => boolean {
  const start = `kv:${prefix}`;
  return (topic) => topic.startsWith(start);
}

// Consul parses flags as a uint64, which `consul lock` fills (0x2ddccbc058a50c18): kept exactly.
function flagsParam(request: FastifyRequest): KvFlags | undefined {
  const value = firstValue(request, 'flags');
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || BigInt(value) > maxKvFlags) {
    throw new BadQueryParamError('flags', `Invalid flags: "${value}" is not an integer from 0 to 2^64-1`);
  }
  return checkedFlags(BigInt(value));
}

// Consul parses a cas as uint64; an index is exact as a JavaScript number up to 2^53-1.
function uintParam(request: FastifyRequest, name: 'cas'): number | undefined {
  const value = firstValue(request, name);
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new BadQueryParamError(name, `Invalid ${name}: "${value}" is not an integer from 0 to 2^53-1`);
  }
  return Number(value);
}

function json(reply: FastifyReply, body: unknown): FastifyReply {
  return reply.code(200).type('application/json').send(kvJson(body));
}

// Stands for a bigint in JSON.stringify's output until it is written as a bare number; random,
// so that no key or value can spell it.
const bigintMark = `bigint-${randomUUID()}:`;
const bigintMarked = new RegExp(`"${bigintMark}(\\d+)"`, 'g');

/** JSON.stringify, with the bigints of KV flags (above 2^53-1) written as exact JSON numbers. */
export function kvJson(body: unknown): string {
  const text = JSON.stringify(body, (_key, value: unknown) =>
    typeof value === 'bigint' ? `${bigintMark}${value}` : value,
  );
  return text.includes(bigintMark) ? text.replace(bigintMarked, '$1') : text;
}

/**
 * A KV entry in Consul's JSON (`DirEntry`), in its field order: an empty value is null, as Go
 * encodes a nil []byte, and `Session` appears only on a locked key.
 */
export function entryJson(entry: KvEntry, withValue = true): Record<string, unknown> {
  return {
    LockIndex: entry.lockIndex,
    Key: entry.key,
    Flags: entry.flags,
    Value: !withValue || entry.value.length === 0 ? null : entry.value.toString('base64'),
    ...(entry.session === undefined ? {} : { Session: entry.session }),
    CreateIndex: entry.createIndex,
    ModifyIndex: entry.modifyIndex,
  };
}

// Go's url.Values.Encode: keys sorted, every value of each.
function encodeQuery(q: Readonly<Record<string, string | string[] | undefined>>): string {
  const params = new URLSearchParams();
  for (const name of Object.keys(q).sort()) {
    const value = q[name];
    for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) params.append(name, v);
  }
  return params.toString();
}
