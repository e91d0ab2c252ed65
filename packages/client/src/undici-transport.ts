import type { IncomingHttpHeaders } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import {
  ClosedError,
  ConfigError,
  ConnectionError,
  instanceOrigin,
  type Call,
  type CallContext,
  type Disposable,
  type Event,
  type Reply,
  type ServiceInstance,
} from '@trellis/core';
import type { Transport } from './transport.js';

export interface UndiciTransportOptions {
  /** Connections kept open per instance; default 64. */
  readonly maxSocketsPerInstance?: number;
  /**
   * Pools (one per instance) kept at most; past it, the least recently used one is closed.
   * Default 512.
   */
  readonly maxPools?: number;
  /** An idle keep-alive connection is closed after this long; default 4 000 ms (undici's). */
  readonly keepAliveTimeoutMs?: number;
  /**
   * Bytes in, bytes out, for a proxy (the gateway): the reply's body stays the bytes received
   * (a `Buffer`, never decoded), and a reply's several `set-cookie` headers are joined with a
   * newline (which no header value may contain) rather than a comma, so that they can be split
   * again. Request bodies are sent as given either way (a string or bytes; objects as JSON).
   * Default false.
   */
  readonly raw?: boolean;
}

/**
 * Where a transport hears that a service's instances changed, so that it closes the pools of
 * instances that are gone. A {@link Discovery} is one.
 */
export interface InstanceChanges {
  readonly onChanged: Event<{ readonly service: string; readonly instances: readonly ServiceInstance[] }>;
}

// Error codes that prove the request never left this process or was never accepted, so that
// sending it elsewhere cannot run it twice: the same list as the axios transport's, plus
// undici's own for a connection that was never made.
const notSentCodes = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * A {@link Transport} on undici: one keep-alive `Pool` per instance, which costs a fraction of
 * axios's CPU per request. It answers like the axios transport: every status is a reply, a
 * body that is JSON is decoded (other text is returned as a string), an object body is sent as
 * JSON, no answer is a ConnectionError, and the call's signal cancels the request.
 *
 * Pools are bounded: `retain()` (or the `InstanceChanges` given to {@link watch}) closes the
 * pools of instances that left, and past `maxPools` the least recently used pool is closed.
 *
 * @throws ConfigError from the constructor for a non-positive `maxSocketsPerInstance` or
 *   `maxPools`.
 * @example
 * const transport = new UndiciTransport({ maxSocketsPerInstance: 32 });
 * const users = new ServiceClient({ service: 'users', discovery, transport });
 * // or simply: new ServiceClient({ service: 'users', discovery, transport: 'undici' })
 */
export class UndiciTransport implements Transport {
  readonly #pools = new Map<string, Pool>();
  readonly #poolOptions: Pool.Options;
  readonly #maxPools: number;
  readonly #raw: boolean;
  readonly #watches: Disposable[] = [];
  #closed = false;

  constructor(options: UndiciTransportOptions = {}) {
    const connections = options.maxSocketsPerInstance ?? 64;
    if (!Number.isInteger(connections) || connections < 1) {
      throw new ConfigError('maxSocketsPerInstance', `must be a positive integer, got ${connections}`);
    }
    this.#maxPools = options.maxPools ?? 512;
    if (!Number.isInteger(this.#maxPools) || this.#maxPools < 1) {
      throw new ConfigError('maxPools', `must be a positive integer, got ${this.#maxPools}`);
    }
    this.#raw = options.raw === true;
    this.#poolOptions = {
      connections,
      ...(options.keepAliveTimeoutMs === undefined ? {} : { keepAliveTimeout: options.keepAliveTimeoutMs }),
    };
  }

  /** Open pools, one per instance origin called recently. */
  get pools(): number {
    return this.#pools.size;
  }

  /**
   * Sends `call` to `instance`, cancelled with `context`.
   *
   * Through undici's handler API rather than `pool.request()`: a request with a signal (any
   * signal) cost 15 µs more client CPU, half of a whole request, and the body stream it makes
   * costs more again; here cancellation is one listener on the context.
   * @throws ConnectionError when no answer came; the context's reason when it cancelled the request.
   */
  send(call: Call, instance: ServiceInstance, context: CallContext): Promise<Reply> {
    let pool: Pool;
    try {
      pool = this.#pool(instanceOrigin(instance));
    } catch (error) {
      return Promise.reject(error);
    }
    const json = call.body !== undefined && isJsonPayload(call.body);
    const raw = this.#raw;
    return new Promise<Reply>((resolve, reject) => {
      let controller: Dispatcher.DispatchController | undefined;
      let status = 0;
      let headers: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      // Before the request starts (queued for a connection), the cancellation waits for it.
      const stopListening = context.onCancel((reason) => controller?.abort(reason as Error));
      pool.dispatch(
        {
          path: call.path,
          method: call.method,
          headers: requestHeaders(call.headers, json),
          body: call.body === undefined ? null : json ? JSON.stringify(call.body) : (call.body as string | Uint8Array),
        },
        {
          onRequestStart(started) {
            controller = started;
            if (context.aborted) started.abort(context.reason as Error);
          },
          onResponseStart(_controller, statusCode, responseHeaders) {
            status = statusCode;
            headers = responseHeaders;
          },
          onResponseData(_controller, chunk) {
            chunks.push(chunk);
          },
          onResponseEnd() {
            stopListening();
            const bytes = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
            if (raw) resolve({ status, headers: flattenHeaders(headers, '\n'), body: bytes, instance });
            else resolve({ status, headers: flattenHeaders(headers), body: decode(bytes.toString()), instance });
          },
          onResponseError(_controller, error) {
            stopListening();
            if (context.aborted) reject(context.reason);
            else {
              const sent = !notSentCodes.has(errorCode(error) ?? '');
              reject(new ConnectionError(call.service, instance.id, sent, error));
            }
          },
        },
      );
    });
  }

  /**
   * Closes the pools of instances not in `instances` (their calls in flight finish first).
   * @returns how many pools were closed.
   */
  retain(instances: Iterable<Pick<ServiceInstance, 'address' | 'port'>>): number {
    const keep = new Set<string>();
    for (const instance of instances) keep.add(instanceOrigin(instance));
    let closed = 0;
    for (const [origin, pool] of this.#pools) {
      if (keep.has(origin)) continue;
      this.#pools.delete(origin);
      closePool(pool);
      closed++;
    }
    return closed;
  }

  /**
   * Follows `service`'s instances in `changes` (a Discovery), closing the pools of instances
   * that leave it; the watch ends with {@link close}.
   */
  watch(service: string, changes: InstanceChanges): this {
    this.#watches.push(
      changes.onChanged((change) => {
        if (change.service === service) this.retain(change.instances);
      }),
    );
    return this;
  }

  /** Closes every pool and its connections at once (calls in flight fail); sends after it throw. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const watch of this.#watches.splice(0)) watch.dispose();
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((pool) => pool.destroy()));
  }

  #pool(origin: string): Pool {
    const pool = this.#pools.get(origin);
    if (pool !== undefined) {
      // Most recently used last, so that the cap closes the pool unused for longest.
      if (this.#pools.size > 1) {
        this.#pools.delete(origin);
        this.#pools.set(origin, pool);
      }
      return pool;
    }
    if (this.#closed) throw new ClosedError('UndiciTransport');
    if (this.#pools.size >= this.#maxPools) {
      const [oldest, evicted] = this.#pools.entries().next().value as [string, Pool];
      this.#pools.delete(oldest);
      closePool(evicted);
    }
    const made = new Pool(origin, this.#poolOptions);
    this.#pools.set(origin, made);
    return made;
  }
}

function closePool(pool: Pool): void {
  // close() lets calls in flight finish; nothing waits for it, and it cannot fail usefully.
  pool.close().catch(() => undefined);
}

// The shapes axios sends as JSON; strings and bytes go as they are.
function isJsonPayload(body: unknown): boolean {
  return typeof body === 'object' && body !== null && !(body instanceof Uint8Array) && !(body instanceof ArrayBuffer);
}

// Headers of the caller's own hop (a gateway forwarding what it received), which undici refuses
// to send: each connection sets its own.
const hopByHop = new Set(['transfer-encoding', 'keep-alive', 'upgrade']);

/** The call's headers, as they are in the common case; a copy without hop-by-hop ones, with a JSON content type. */
function requestHeaders(headers: Readonly<Record<string, string>>, json: boolean): Readonly<Record<string, string>> {
  let typed = false;
  let hop = false;
  for (const name in headers) {
    const lower = name.toLowerCase();
    if (lower === 'content-type') typed = true;
    else if (hopByHop.has(lower)) hop = true;
  }
  if (!hop && (typed || !json)) return headers;
  const out: Record<string, string> = {};
  for (const name in headers) if (!hopByHop.has(name.toLowerCase())) out[name] = headers[name] as string;
  if (json && !typed) out['content-type'] = 'application/json';
  return out;
}

// As axios does by default: text that parses as JSON is decoded, any other text stays a string.
function decode(text: string): unknown {
  if (text === '') return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

// Repeated headers are joined with a comma, as HTTP allows, except set-cookie in raw mode:
// its values may contain commas (Expires dates).
function flattenHeaders(
  headers: Record<string, string | string[] | undefined>,
  cookieSeparator = ', ',
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    out[name] = Array.isArray(value) ? value.join(name === 'set-cookie' ? cookieSeparator : ', ') : value;
  }
  return out;
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // Happy eyeballs reports each address tried; the first says why.
  const first = (error as { errors?: unknown[] }).errors?.[0];
  return first === undefined ? undefined : errorCode(first);
}
