import { EventEmitter } from 'node:events';
import { types } from 'node:util';
import Consul from 'consul';
import { ConfigError, RegistryRejectedError, RegistryUnavailableError } from '@trellis/core';
import { acceptGzip } from './gzip-answers.js';

/** Where a Consul-speaking client connects: the registry server or a Consul agent. */
export interface ConsulOptions {
  /** Base URL of the Trellis registry server or a Consul agent; default `http://127.0.0.1:8500`. */
  readonly url?: string;
  /** ACL token sent with every request. */
  readonly token?: string;
  /** Milliseconds before a request to the registry is abandoned; default 5000. */
  readonly timeoutMs?: number;
}

/** An npm `consul` client with the checked URL and request timeout it was made from. */
export interface ConsulConnection {
  readonly url: string;
  readonly consul: Consul;
  readonly timeoutMs: number;
}

/**
 * Checks `options` and makes the npm `consul` client that {@link ConsulRegistry} and
 * `@trellis/config`'s `ConsulKv` share: keep-alive, the token as a default, gzip answers.
 *
 * @param field the option prefix named in a ConfigError (`registry` gives `registry.url`).
 * @throws ConfigError when `url` is not an http(s) URL or `timeoutMs` is not positive.
 * @example
 * const { consul, url } = connectConsul({ url: 'http://127.0.0.1:8500' });
 * const leader = await sendToConsul(url, 'status', () => consul.status.leader());
 */
export function connectConsul(options: ConsulOptions = {}, field = 'registry'): ConsulConnection {
  const url = (options.url ?? 'http://127.0.0.1:8500').replace(/\/+$/, '');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${field}.url`, `"${url}" is not a URL; expected e.g. http://127.0.0.1:8500`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(`${field}.url`, `"${url}" must start with http:// or https://`);
  }
  const timeoutMs = options.timeoutMs ?? 5_000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new ConfigError(`${field}.timeoutMs`, `must be a positive number of milliseconds, got ${timeoutMs}`);
  }
  const consul = new Consul({
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port: Number(parsed.port || (parsed.protocol === 'https:' ? 443 : 80)),
    secure: parsed.protocol === 'https:',
    ...(options.token === undefined ? {} : { defaults: { token: options.token } }),
  });
  // A blocking query on a service of 200 instances answers 230 KB each time it changes, and
  // 6 KB gzipped: what a thousand watchers woken at once cost the registry and the network.
  acceptGzip(consul);
  return { url, consul, timeoutMs };
}

/**
 * Runs one request of the npm `consul` client and types its failure: the registry answered an
 * error status → RegistryRejectedError (with the status); it could not be reached →
 * RegistryUnavailableError. A pooled connection the registry closed (it restarted) fails on
 * first use; the request is then sent once more on a fresh connection.
 *
 * @throws RegistryRejectedError, RegistryUnavailableError.
 * @example
 * const { consul, url } = connectConsul();
 * const entry: unknown = await sendToConsul(url, 'kv get', () => consul.kv.get('config/forum/pageSize'));
 */
export async function sendToConsul<T>(
  url: string,
  operation: string,
  request: () => Promise<T>,
  instanceId?: string,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      const value = await request();
      // The client's HTTP layer tells errors by `instanceof Error`, which fails for errors from
      // another realm (Node's own socket errors under Jest's VM modules): it then resolves with
      // the error instead of rejecting.
      if (types.isNativeError(value)) throw value;
      return value;
    } catch (error) {
      const status = (error as { statusCode?: unknown }).statusCode;
      if (typeof status === 'number') {
        const reason = error instanceof Error ? error.message.replace(/^consul: /, '') : String(error);
        throw new RegistryRejectedError(
          operation,
          status,
          reason,
          instanceId === undefined ? {} : { instance: instanceId },
        );
      }
      if (attempt === 1 && isStaleConnection(error)) continue;
      throw new RegistryUnavailableError(url, error);
    }
  }
}

/** What a blocking read asks: Consul's `?index=` and `?wait=`, and a signal that abandons it. */
export interface BlockingRead {
  readonly index?: number;
  readonly waitMs?: number;
  readonly signal?: AbortSignal;
}

/** The fields of the npm client's request that make it a blocking read, beside the endpoint's own. */
export interface BlockingFields {
  readonly ctx: EventEmitter;
  readonly index?: string;
  readonly wait?: string;
  readonly timeout: number;
}

/**
 * One blocking read with the npm `consul` client: `send` gets the fields to spread into its
 * request (they are not in the client's typings, but it sends them); the answer comes back with
 * its X-Consul-Index. Index 0 (the default) answers at once; `signal` cancels the request.
 *
 * @example
 * const { consul, url } = connectConsul();
 * const { index, body } = await blockingRead({ index: 7, waitMs: 30_000 }, 10_000, (fields) =>
 *   sendToConsul(url, 'kv get', () => consul.kv.get({ key: 'config/forum/pageSize', ...fields } as { key: string })),
 * );
 */
export async function blockingRead(
  read: BlockingRead,
  timeoutMs: number,
  send: (fields: BlockingFields) => Promise<unknown>,
): Promise<{ readonly index: number; readonly body: unknown }> {
  const index = read.index ?? 0;
  const waitMs = read.waitMs ?? 60_000;
  // The npm client cancels a request when its context emits "cancel", and with
  // `includeResponse` answers [response, body], which is where X-Consul-Index is.
  const ctx = Object.assign(new EventEmitter(), { includeResponse: true });
  const cancel = (): void => void ctx.emit('cancel');
  read.signal?.addEventListener('abort', cancel, { once: true });
  try {
    const answer = await send({
      ctx,
      ...(index > 0 ? { index: String(index), wait: `${Math.ceil(waitMs)}ms` } : {}),
      // The registry holds a blocking query up to wait plus wait/16 of jitter.
      timeout: index > 0 ? waitMs + waitMs / 16 + timeoutMs : timeoutMs,
    });
    const [response, body] = Array.isArray(answer) ? (answer as [unknown, unknown]) : [undefined, answer];
    return { index: consulIndex(response), body };
  } finally {
    read.signal?.removeEventListener('abort', cancel);
  }
}

/**
 * The X-Consul-Index of an answer (the `response` of a request made with `includeResponse`).
 * A missing or zero one is taken as 1, so that the next blocking query blocks instead of
 * spinning (Consul's advice).
 *
 * @example
 * consulIndex({ headers: { 'x-consul-index': '42' } }); // 42
 */
export function consulIndex(response: unknown): number {
  const header = (response as { headers?: Record<string, unknown> } | undefined)?.headers?.['x-consul-index'];
  const index = Number(header);
  return Number.isSafeInteger(index) && index > 0 ? index : 1;
}

function isStaleConnection(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return (
    code === 'ECONNRESET' || code === 'EPIPE' || (error instanceof Error && error.message.includes('socket hang up'))
  );
}
