import type * as Etcd3Package from 'etcd3';
import type { Etcd3, IKeyValue, Lease } from 'etcd3';
import {
  ConfigError,
  RegistryRejectedError,
  RegistryUnavailableError,
  TrellisError,
  type ServiceInstance,
} from '@trellis/core';
import type { QueryOptions, Registration, Registry, ServiceView } from './registry.js';
import { ServiceWatch, type WatchOptions } from './service-watch.js';

/** Where {@link EtcdRegistry} connects, and how. */
export interface EtcdRegistryOptions {
  /**
   * The members of the etcd cluster, `http://host:port` each (`host:port` is taken as http);
   * default `['http://127.0.0.1:2379']`. Calls go to any member that answers.
   */
  readonly endpoints?: readonly string[];
  /** etcd's user and password, when its authentication is on. */
  readonly auth?: { readonly username: string; readonly password: string };
  /** Keys are kept under this prefix: `<prefix>services/<service>/<instance-id>`; default `trellis/`. */
  readonly prefix?: string;
  /** Milliseconds before a request to etcd is abandoned (and before a member is given up on); default 5000. */
  readonly timeoutMs?: number;
}

/** The `etcd3` npm package is not installed: it is an optional peer of @trellis/registry. */
export class EtcdClientMissingError extends TrellisError {
  constructor(cause: unknown) {
    super('ETCD_CLIENT_MISSING', 'EtcdRegistry needs the etcd3 package: npm install etcd3', { cause });
  }
}

// The most registrations one registry object holds leases for: a process registers itself,
// rarely more; this bounds a loop that registers without deregistering.
const maxRegistrations = 1_024;

/** One instance registered through this object: the lease its key hangs on. */
interface Held {
  readonly lease: Lease;
  readonly key: string;
}

/**
 * A {@link Registry} on etcd v3, through the `etcd3` npm client (install it beside
 * @trellis/registry). An instance is the key `<prefix>services/<service>/<instance-id>` holding
 * its JSON (id, address, port, tags, and meta with version, zone, weight and labels as
 * ConsulRegistry returns them), attached to a lease whose TTL is the registration's `ttlMs`
 * rounded up to whole seconds; a heartbeat keeps the lease alive once. A blocking query is a
 * watch of the service's keys from the revision after `index`, so the index is an etcd
 * revision.
 *
 * What differs from Consul: etcd has no health checks, so an instance is healthy while its
 * lease lives and gone when it expires (`unhealthy` is always empty, `deregisterAfterMs` has
 * nothing to do); a heartbeat after the lease expired is refused with 404, and
 * `SelfRegistration` then registers again. Heartbeats and deregistration go through the
 * object that registered the instance (it holds the lease); another one answers 404.
 *
 * @throws ConfigError from the constructor when an endpoint, the prefix or the timeout is malformed.
 * @example
 * const registry = new EtcdRegistry({ endpoints: ['http://127.0.0.1:2379'] });
 * const users = await registry.list('users');
 */
export class EtcdRegistry implements Registry {
  /** The endpoints as given to the client, for messages. */
  readonly url: string;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #client: Promise<Connected>;
  readonly #held = new Map<string, Held>();
  /** The last registration of each id in flight (at most one entry per id being registered). */
  readonly #registering = new Map<string, Promise<void>>();
  #closed = false;

  constructor(options: EtcdRegistryOptions = {}) {
    const endpoints = (options.endpoints ?? ['http://127.0.0.1:2379']).map(checkEndpoint);
    if (endpoints.length === 0) throw new ConfigError('registry.endpoints', 'must list at least one etcd member');
    const prefix = options.prefix ?? 'trellis/';
    if (prefix === '' || !prefix.endsWith('/')) {
      throw new ConfigError('registry.prefix', `must be a non-empty key prefix ending in "/", got "${prefix}"`);
    }
    const timeoutMs = options.timeoutMs ?? 5_000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new ConfigError('registry.timeoutMs', `must be a positive number of milliseconds, got ${timeoutMs}`);
    }
    this.url = endpoints.join(',');
    this.#prefix = prefix;
    this.#timeoutMs = timeoutMs;
    this.#client = connect(endpoints, options.auth, timeoutMs);
    // Until a call awaits it, a missing package must not be an unhandled rejection.
    this.#client.catch(() => undefined);
  }

  async register(registration: Registration): Promise<void> {
    // One registration of an id at a time: two at once would each miss the other's lease, and
    // the key could end on a lease this object does not keep alive.
    const id = registration.instance.id;
    const mine = (this.#registering.get(id) ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => this.#register(registration));
    this.#registering.set(id, mine);
    try {
      await mine;
    } finally {
      if (this.#registering.get(id) === mine) this.#registering.delete(id);
    }
  }

  async #register(registration: Registration): Promise<void> {
    const { instance, ttlMs } = registration;
    const previous = this.#held.get(instance.id);
    if (previous === undefined && this.#held.size >= maxRegistrations) {
      throw new RegistryRejectedError('register', 429, `this registry holds ${maxRegistrations} registrations already`);
    }
    const key = this.#serviceKey(instance.service) + instance.id;
    const lease = await this.#send('register', async (client) => {
      const granted = client.lease(Math.max(1, Math.ceil(ttlMs / 1_000)), { autoKeepAlive: false });
      // Keep-alive is ours (heartbeat); the lease's own report of a loss is not needed.
      granted.on('lost', () => undefined);
      // The instance's JSON, read back field by field (parseInstance).
      await granted.put(key).value(JSON.stringify(instance));
      return granted;
    });
    this.#held.set(instance.id, { lease, key });
    // Replaced: the old lease goes, and with it the old key if the service changed (the key of the
    // same service now hangs on the new lease).
    if (previous !== undefined) await this.#revoke(previous).catch(() => undefined);
  }

  async heartbeat(instanceId: string): Promise<void> {
    const held = this.#owned('heartbeat', instanceId);
    // A keep-alive is a stream to one member, which etcd3 does not retry elsewhere: a member that
    // died is tried again on another, up to three members in all. Streams get no deadline by
    // default (a watch is held for long), so this one gets its own: a member that stopped
    // answering must not hold the heartbeat, and SelfRegistration's next one, for ever.
    for (let attempt = 1; ; attempt++) {
      try {
        const deadline = Date.now() + this.#timeoutMs;
        await this.#send('heartbeat', () => held.lease.keepaliveOnce({ deadline }), instanceId);
        return;
      } catch (error) {
        if (RegistryRejectedError.is(error) && error.status === 404) this.#held.delete(instanceId);
        if (attempt >= 3 || !RegistryUnavailableError.is(error)) throw error;
      }
    }
  }

  async deregister(instanceId: string): Promise<void> {
    const held = this.#owned('deregister', instanceId);
    this.#held.delete(instanceId);
    await this.#revoke(held, instanceId);
  }

  async list(service: string): Promise<ServiceInstance[]> {
    return [...(await this.query(service)).healthy];
  }

  /**
   * Reads the service's keys; with `options.index`, first waits (up to `waitMs`, default
   * 60 000) for a change to them after that revision, so that a change made since is answered
   * at once. A revision etcd has compacted away answers at once with the current keys.
   */
  async query(service: string, options: QueryOptions = {}): Promise<ServiceView> {
    const prefix = this.#serviceKey(service);
    if (options.index !== undefined && options.index > 0) {
      await this.#changeAfter(prefix, options.index, options.waitMs ?? 60_000, options.signal);
    }
    const read = await this.#send('query', (client) => client.getAll().prefix(prefix).exec());
    const healthy = read.kvs.flatMap((kv) => parseInstance(kv)).sort(byId);
    return { index: Number(read.header.revision), healthy, unhealthy: [] };
  }

  watch(service: string, options: WatchOptions = {}): ServiceWatch {
    return new ServiceWatch(service, (query) => this.query(service, query), options);
  }

  /** Closes the client; leases are left to expire, as a crashed process's would. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#held.clear();
    const connected = await this.#client.catch(() => undefined);
    connected?.client.close();
  }

  #serviceKey(service: string): string {
    return `${this.#prefix}services/${service}/`;
  }

  #owned(operation: string, instanceId: string): Held {
    const held = this.#held.get(instanceId);
    if (held === undefined) {
      throw new RegistryRejectedError(
        operation,
        404,
        `instance "${instanceId}" is not registered through this registry`,
      );
    }
    return held;
  }

  async #revoke(held: Held, instanceId?: string): Promise<void> {
    await this.#send('deregister', () => held.lease.revoke(), instanceId);
  }

  // Resolves at the first put or delete under `prefix` after revision `index`, or after `waitMs`,
  // or when `signal` aborts; a revision compacted away, or not reached yet, resolves at once (the
  // read that follows answers the current keys).
  async #changeAfter(prefix: string, index: number, waitMs: number, signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted === true) throw signal.reason;
    // A watch is a stream: no call deadline covers its making, so the wait for it is bounded
    // here; one made after that is cancelled at once, so that no watch outlives its query.
    const watcher = await this.#send('query', (client) => {
      const creating = client
        .watch()
        .prefix(prefix)
        .startRevision(String(index + 1))
        .create();
      return within(this.#timeoutMs, creating).catch((error: unknown) => {
        void creating.then((late) => late.cancel()).catch(() => undefined);
        throw error;
      });
    });
    // An index ahead of etcd's revision (etcd restarted empty, or another cluster) would wait
    // for revisions that mean nothing to the caller: answer at once, as Consul does when its
    // index goes back, and the lower index that follows tells the caller to start again.
    // etcd3 keeps the revision etcd answered the watch with, plus one.
    const ahead = Number(watcher.lastRevision()) - 1 < index;
    let failed = false;
    let timer: NodeJS.Timeout | undefined;
    let aborted = (): void => undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        if (ahead) return resolve();
        timer = setTimeout(resolve, waitMs);
        aborted = () => reject(signal?.reason);
        signal?.addEventListener('abort', aborted, { once: true });
        // A watch that fails (its revision compacted), loses its member or ends answers too: the
        // read that follows tells what changed, on a member that answers.
        watcher
          .on('put', () => resolve())
          .on('delete', () => resolve())
          .on('disconnected', () => resolve())
          .on('end', () => resolve())
          .on('error', () => {
            failed = true;
            resolve();
          });
        // Aborted while the watch was being made.
        if (signal?.aborted === true) aborted();
      });
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', aborted);
      watcher.removeAllListeners();
      // An error later must not throw for want of a listener.
      watcher.on('error', () => undefined);
      // After an error, etcd3's cancel() waits for a reconnection that may never come.
      if (!failed) await within(this.#timeoutMs, watcher.cancel()).catch(() => undefined);
    }
  }

  async #send<T>(operation: string, request: (client: Etcd3) => Promise<T>, instanceId?: string): Promise<T> {
    if (this.#closed) throw new RegistryUnavailableError(this.url, new Error('the registry client is closed'));
    const { client, etcd3 } = await this.#client;
    try {
      return await request(client);
    } catch (error) {
      throw typed(etcd3, this.url, operation, error, instanceId);
    }
  }
}

/** `promise`, or a rejection once `ms` have passed. */
async function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The client, and the package it came from (for its error classes). */
interface Connected {
  readonly client: Etcd3;
  readonly etcd3: EtcdPackage;
}

type EtcdPackage = typeof Etcd3Package;

// Loaded on first use, so that Consul users never install etcd's gRPC client.
async function connect(
  endpoints: readonly string[],
  auth: EtcdRegistryOptions['auth'],
  timeoutMs: number,
): Promise<Connected> {
  let etcd3: EtcdPackage;
  try {
    etcd3 = await import('etcd3');
  } catch (error) {
    throw new EtcdClientMissingError(error);
  }
  const client = new etcd3.Etcd3({
    hosts: [...endpoints],
    ...(auth === undefined ? {} : { auth: { username: auth.username, password: auth.password } }),
    dialTimeout: timeoutMs,
    // Streams (watches, which a blocking query holds) have no deadline; every other call does.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs }),
  });
  return { client, etcd3 };
}

function checkEndpoint(endpoint: string): string {
  const withScheme = /^[a-z]+:\/\//i.test(endpoint) ? endpoint : `http://${endpoint}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ConfigError('registry.endpoints', `"${endpoint}" is not host:port or an http:// URL`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '' || url.pathname.length > 1) {
    throw new ConfigError('registry.endpoints', `"${endpoint}" must be host:port or http(s)://host:port`);
  }
  return `${url.protocol}//${url.host}`;
}

// etcd's answers typed as Consul's would be: a lease it no longer has is an unknown instance
// (404), a refusal of rights 403; anything else means etcd could not be reached in time.
function typed(
  etcd3: EtcdPackage,
  url: string,
  operation: string,
  error: unknown,
  instanceId: string | undefined,
): Error {
  if (error instanceof TrellisError) return error;
  if (error instanceof etcd3.EtcdLeaseInvalidError) {
    return new RegistryRejectedError(
      operation,
      404,
      `instance "${instanceId ?? '?'}" is not registered (its lease expired)`,
    );
  }
  if (
    error instanceof etcd3.EtcdPermissionDeniedError ||
    error instanceof etcd3.EtcdAuthenticationFailedError ||
    error instanceof etcd3.EtcdInvalidAuthTokenError
  ) {
    return new RegistryRejectedError(operation, 403, error.message, { cause: error });
  }
  return new RegistryUnavailableError(url, error);
}

function parseInstance(kv: IKeyValue): ServiceInstance[] {
  try {
    const stored = JSON.parse(kv.value.toString()) as ServiceInstance;
    const meta = stored.meta;
    return [
      {
        id: stored.id,
        service: stored.service,
        address: stored.address,
        port: stored.port,
        tags: [...stored.tags],
        meta: {
          weight: meta.weight,
          labels: { ...meta.labels },
          ...(meta.version === undefined ? {} : { version: meta.version }),
          ...(meta.zone === undefined ? {} : { zone: meta.zone }),
        },
      },
    ];
  } catch {
    // A key under the prefix written by something else: not an instance.
    return [];
  }
}

function byId(x: ServiceInstance, y: ServiceInstance): number {
  return x.id < y.id ? -1 : x.id > y.id ? 1 : 0;
}
