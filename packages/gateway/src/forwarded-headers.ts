import type { IncomingHttpHeaders } from 'node:http';

/** Headers of one hop (RFC 9110 §7.6.1), never passed on by a proxy, either way. */
const hopByHop: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
]);

/**
 * Request headers the gateway sets itself: what a client sends under these names is dropped, so
 * that a hostile client cannot pick an identity or fake where it came from. `host` and
 * `content-length` are set by the connection to the instance.
 */
const setByGateway: ReadonlySet<string> = new Set([
  'host',
  'content-length',
  'x-user-id',
  'x-user-name',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-prefix',
]);

/** Reply headers the gateway does not pass back: the length is its own connection's. */
const replyDropped: ReadonlySet<string> = new Set([...hopByHop, 'content-length']);

/** Whether a header of a request or reply is one hop's own (connection, keep-alive, te, trailer, transfer-encoding, upgrade, proxy-*). */
export function isHopByHop(name: string): boolean {
  return hopByHop.has(name) || name.startsWith('proxy-');
}

/** Who the gateway says the request came from, and the user it found by the session. */
export interface ForwardedFor {
  /** The client's address, appended to X-Forwarded-For. */
  readonly clientAddress: string;
  /** "http" or "https", as the gateway was reached. */
  readonly proto: string;
  /** The Host the client asked for. */
  readonly host: string | undefined;
  /** The path prefix the route removed or replaced ("/forum"); undefined when the path went on as it was. */
  readonly prefix: string | undefined;
  /** The signed-in user, when a session was checked and found. */
  readonly user: { readonly id: string; readonly name: string } | undefined;
}

/**
 * The headers to send on to the instance: the client's, minus hop-by-hop ones (and those the
 * Connection header names), minus those the gateway sets (identity, X-Forwarded-*, host,
 * length), plus X-Forwarded-For (appended), -Proto, -Host, -Prefix and the user's
 * `x-user-id` / `x-user-name`. One pass over the headers, one object.
 */
export function forwardedHeaders(headers: IncomingHttpHeaders, forwarded: ForwardedFor): Record<string, string> {
  const out: Record<string, string> = {};
  const connection = headers.connection;
  // Names listed in Connection are hop-by-hop too; rare beyond "keep-alive" and "close".
  const listed =
    connection === undefined || connection === 'keep-alive' || connection === 'close'
      ? undefined
      : new Set(connection.toLowerCase().split(/\s*,\s*/));
  for (const name in headers) {
    if (hopByHop.has(name) || setByGateway.has(name) || name.startsWith('proxy-')) continue;
    if (listed?.has(name) === true) continue;
    const value = headers[name];
    if (value === undefined) continue;
    out[name] = typeof value === 'string' ? value : value.join(', ');
  }
  const before = out['x-forwarded-for'];
  out['x-forwarded-for'] = before === undefined ? forwarded.clientAddress : `${before}, ${forwarded.clientAddress}`;
  out['x-forwarded-proto'] = forwarded.proto;
  if (forwarded.host !== undefined) out['x-forwarded-host'] = forwarded.host;
  if (forwarded.prefix !== undefined) out['x-forwarded-prefix'] = forwarded.prefix;
  const user = forwarded.user;
  if (user !== undefined) {
    out['x-user-id'] = headerSafe(user.id);
    out['x-user-name'] = headerSafe(user.name);
  }
  return out;
}

/**
 * The reply's headers to pass back, minus hop-by-hop ones (and those its Connection header
 * names) and the length (the gateway's own connection sets it, except for a HEAD, whose length
 * is the instance's), with several set-cookie values (joined with a newline by the raw
 * transport) split again.
 */
export function replyHeaders(
  headers: Readonly<Record<string, string>>,
  head = false,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const connection = headers.connection;
  const listed =
    connection === undefined || connection === 'keep-alive' || connection === 'close'
      ? undefined
      : new Set(connection.toLowerCase().split(/\s*,\s*/));
  for (const name in headers) {
    if (name === 'content-length' && head) {
      out[name] = headers[name] as string;
      continue;
    }
    if (replyDropped.has(name) || name.startsWith('proxy-') || listed?.has(name) === true) continue;
    const value = headers[name] as string;
    out[name] = name === 'set-cookie' && value.includes('\n') ? value.split('\n') : value;
  }
  return out;
}

// Printable ASCII goes as it is; anything else (a name in another script, a control character)
// percent-encoded, since a header value cannot carry it safely.
function headerSafe(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) ? value : encodeURIComponent(value);
}
