import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { Authorizer } from '../acl/acl-authorizer.js';
import { identityOf, type RequestIdentity } from '../acl/acl-enforcement.js';
import { methodNotAllowed, type RouteAcl } from '../acl/route-acl.js';
import { consistencyHeaders, text } from '../http/consul-http.js';
import type { ServerContext } from '../http/server-context.js';
import { entryJson, kvJson } from './kv-api.js';
import { kvWriteVerbs, type KvOp, type KvTxnError, type KvTxnResult, type KvVerb } from './kv-store.js';

/** Consul's cap on the operations of one transaction (`maxTxnOps`). */
export const maxTxnOps = 64;

/** Consul's default cap on a transaction's body (`txn_max_req_len`): 512 KiB. */
export const maxTxnBytes = 512 * 1024;

const verbs: ReadonlySet<string> = new Set<KvVerb>([
  'set',
  'cas',
  'lock',
  'unlock',
  'get',
  'get-tree',
  'check-index',
  'check-session',
  'check-not-exists',
  'delete',
  'delete-tree',
  'delete-cas',
]);

const lowerKeys = (value: unknown): unknown =>
  typeof value === 'object' && value !== null && !Array.isArray(value)
    ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k.toLowerCase(), v]))
    : value;

// A uint64 as JSON gives it; exact only up to 2^53-1 here.
const uint = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
// Go's base64.StdEncoding: padded, no whitespace.
const base64 = z
  .string()
  .regex(/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, 'must be base64 (standard, padded)');

const kvOpSchema = z.preprocess(
  lowerKeys,
  z.object({
    verb: z.string(),
    key: z.string().nullish(),
    value: base64.nullish(),
    // Exact up to 2^53-1 only, as JSON.parse reads numbers; larger flags go through /v1/kv.
    flags: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER, 'above 2^53-1 is not supported here').nullish(),
    index: uint.nullish(),
    session: z.string().nullish(),
  }),
);

const opSchema = z.preprocess(lowerKeys, z.object({ kv: kvOpSchema.nullish() }).catchall(z.unknown()));

const fieldNames: Readonly<Record<string, string>> = {
  kv: 'KV',
  verb: 'Verb',
  key: 'Key',
  value: 'Value',
  flags: 'Flags',
  index: 'Index',
  session: 'Session',
};

// Open to every token: the handler checks each operation's key right, and reports a refusal in
// Errors (409) as Consul does, instead of a 403 for the whole.
const eachOperation: RouteAcl = { needs: () => [] };

// One operation as decoded: a verb this server knows, or one it reports as unknown.
type DecodedOp = { readonly op: KvOp } | { readonly unknownVerb: string; readonly key: string };

/**
 * `PUT /v1/txn`: Consul's transactions, of KV operations (`{"KV": {"Verb", "Key", "Value",
 * "Flags", "Index", "Session"}}`, values in base64). All hold or nothing changes: 200 with
 * `Results` (an entry per write, without its value; with values for `get` and `get-tree`) at one
 * new index, or 409 with `Errors` naming each failed operation (`OpIndex`, `What`). At most
 * {@link maxTxnOps} operations (413 beyond). With ACLs on, each operation needs its key right
 * (write; read for check-index and check-session; write on all under the prefix for
 * delete-tree), a refused one fails the transaction in `Errors`, and results the token may not
 * read are left out, as in Consul.
 *
 * The route lives in a scope of its own, so that a body over the limit is answered with
 * Consul's text.
 */
export function registerTxnApi(app: FastifyInstance, { kv, sessions }: ServerContext): void {
  void app.register(async (scope) => {
    scope.setErrorHandler((error: FastifyError, _request, reply) => {
      if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        return text(reply, 413, `Request body too large, max size: ${maxTxnBytes} bytes`);
      }
      throw error;
    });
    scope.route({
      method: 'PUT',
      url: '/v1/txn',
      config: { acl: eachOperation },
      bodyLimit: maxTxnBytes,
      handler: async (request, reply) => {
        const decoded = decodeOps(request.body);
        if (typeof decoded === 'string') return text(reply, 400, `Failed to parse body: ${decoded}`);
        if (decoded.length > maxTxnOps) {
          return text(reply, 413, `Transaction contains too many operations (${decoded.length} > ${maxTxnOps})`);
        }
        for (const item of decoded) {
          if ('op' in item && 'value' in item.op && item.op.value.byteLength > kv.maxValueSize) {
            const size = item.op.value.byteLength;
            return text(
              reply,
              413,
              `Value for key ${JSON.stringify(item.op.key)} is too large (${size} > ${kv.maxValueSize} bytes)`,
            );
          }
        }
        const identity = identityOf(request);
        const errors = preCheck(decoded, identity, (key) => sessions.lockDelayUntil(key) !== undefined);
        if (errors.length > 0) return conflict(reply, errors);
        const known = decoded.flatMap((item) => ('op' in item ? [item.op] : []));
        const positions = decoded.flatMap((item, i) => ('op' in item ? [i] : []));
        const unknown = known.length < decoded.length;
        // With an unknown verb nothing may change; the others run only to report their failures.
        const outcome = kv.transaction(known, { sessionExists: (id) => sessions.has(id), dryRun: unknown });
        // Consul runs every operation and reports each failure, an unknown verb's among them.
        const failed: KvTxnError[] = outcome.ok
          ? []
          : outcome.errors.map((e) => ({ opIndex: positions[e.opIndex] ?? 0, what: e.what }));
        decoded.forEach((item, opIndex) => {
          if (!('op' in item)) failed.push({ opIndex, what: `unknown KV verb ${JSON.stringify(item.unknownVerb)}` });
        });
        if (failed.length > 0 || !outcome.ok)
          return conflict(
            reply,
            failed.sort((a, b) => a.opIndex - b.opIndex),
          );
        const writes = known.some((op) => kvWriteVerbs.has(op.verb));
        // A read-only transaction is answered as a read, with the consistency headers.
        if (!writes) reply.headers(withoutIndex(consistencyHeaders(kv.index)));
        return reply
          .code(200)
          .type('application/json')
          .send(kvJson({ Results: readable(outcome.results, identity?.authorizer).map(resultJson), Errors: null }));
      },
    });
    scope.route({
      method: ['GET', 'HEAD', 'POST', 'DELETE', 'PATCH', 'OPTIONS'],
      url: '/v1/txn',
      config: { acl: methodNotAllowed },
      handler: async (request, reply) =>
        text(reply.header('Allow', 'PUT'), 405, `method ${request.method} not allowed`),
    });
  });
}

function decodeOps(body: unknown): DecodedOp[] | string {
  let raw: unknown;
  try {
    raw = JSON.parse(typeof body === 'string' ? body : '');
  } catch (error) {
    return (error as Error).message;
  }
  if (!Array.isArray(raw)) return 'the body must be a JSON array of operations';
  const decoded: DecodedOp[] = [];
  for (const [i, item] of raw.entries()) {
    const parsed = opSchema.safeParse(item);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = (issue?.path ?? []).map((p) => fieldNames[String(p)] ?? String(p)).join('.');
      return `[${i}]${where === '' ? '' : `.${where}`}: ${issue?.message ?? 'invalid'}`;
    }
    const op = parsed.data.kv;
    if (op === undefined || op === null) {
      return `[${i}]: only KV operations are supported by this server (no Node, Service, Check or Session)`;
    }
    const key = op.key ?? '';
    if (!verbs.has(op.verb)) {
      decoded.push({ unknownVerb: op.verb, key });
      continue;
    }
    const value = Buffer.from(op.value ?? '', 'base64');
    const flags = op.flags ?? 0;
    const index = op.index ?? 0;
    const session = op.session ?? '';
    const verb = op.verb as KvVerb;
    switch (verb) {
      case 'set':
        decoded.push({ op: { verb, key, value, flags } });
        break;
      case 'cas':
        decoded.push({ op: { verb, key, value, flags, index } });
        break;
      case 'lock':
      case 'unlock':
        decoded.push({ op: { verb, key, value, flags, session } });
        break;
      case 'check-index':
      case 'delete-cas':
        decoded.push({ op: { verb, key, index } });
        break;
      case 'check-session':
        decoded.push({ op: { verb, key, session } });
        break;
      default:
        decoded.push({ op: { verb, key } });
    }
  }
  return decoded;
}

// Consul's Txn.preCheck (kvsPreApply for each operation): a key, the ACL right, no lock delay.
function preCheck(
  decoded: readonly DecodedOp[],
  identity: RequestIdentity | undefined,
  lockDelayed: (key: string) => boolean,
): KvTxnError[] {
  const errors: KvTxnError[] = [];
  decoded.forEach((item, opIndex) => {
    const verb = 'op' in item ? item.op.verb : undefined;
    const key = 'op' in item ? item.op.key : item.key;
    if (key === '' && verb !== 'delete-tree') {
      errors.push({ opIndex, what: 'Must provide key' });
      return;
    }
    if (identity !== undefined) {
      const { authorizer: authz, token } = identity;
      const need = verb === 'check-index' || verb === 'check-session' ? 'read' : 'write';
      const ok =
        verb === 'get' || verb === 'get-tree'
          ? true // Filtered on the way out.
          : verb === 'delete-tree'
            ? authz.allowsAllUnder('key', key, 'write')
            : authz.allows('key', key, need);
      if (!ok) {
        // Consul's wording (acl.PermissionDeniedByACL), as the other routes answer it.
        const what = `Permission denied: token with AccessorID '${token.accessorId}' lacks permission 'key:${need}' on key ${JSON.stringify(key)}`;
        errors.push({ opIndex, what });
        return;
      }
    }
    if (verb === 'lock' && lockDelayed(key)) {
      errors.push({ opIndex, what: `failed to lock key ${JSON.stringify(key)} due to lock delay` });
    }
  });
  return errors;
}

function readable(results: readonly KvTxnResult[], authz: Authorizer | undefined): readonly KvTxnResult[] {
  if (authz === undefined || authz.isManagement) return results;
  return results.filter((result) => authz.allows('key', result.entry.key, 'read'));
}

function resultJson(result: KvTxnResult): Record<string, unknown> {
  return { KV: entryJson(result.entry, result.withValue) };
}

function conflict(reply: FastifyReply, errors: readonly KvTxnError[]): FastifyReply {
  return reply
    .code(409)
    .type('application/json')
    .send(JSON.stringify({ Results: null, Errors: errors.map((e) => ({ OpIndex: e.opIndex, What: e.what })) }));
}

// Consul answers a read-only transaction with KnownLeader and LastContact, not an index.
function withoutIndex(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => name !== 'X-Consul-Index'));
}
