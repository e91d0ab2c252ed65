import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { ConfigError, systemClock, type Clock, type Closeable } from '@trellis/core';
import { BlockingQueries } from './blocking-query.js';
import { Catalog, type CatalogChange } from './catalog.js';
import { nodeMeta, type NodeInfo } from './consul-json.js';
import { registerHttpApi } from './http-api.js';
import { KvStore } from './kv-store.js';

/** The log levels of the server's logger (pino's), quietest last. */
export const logLevels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** One of {@link logLevels}. */
export type LogLevel = (typeof logLevels)[number];

/** Options of {@link RegistryServer}; every one has a default. */
export interface RegistryServerOptions {
  /** Drives TTL expiry and reaping; default `systemClock`. Tests pass a `ManualClock`. */
  readonly clock?: Clock;
  /** Logs go to stderr as JSON lines; default `info`. */
  readonly logLevel?: LogLevel;
  /** The node name Consul clients see in every entry; default `trellis`. */
  readonly nodeName?: string;
  /** The datacenter name; default `dc1`. */
  readonly datacenter?: string;
  /**
   * The node's address, which Consul clients use for a service registered with no Address;
   * default `127.0.0.1`.
   */
  readonly nodeAddress?: string;
  /**
   * Metadata of the node, which `?node-meta=key:value` filters match; Consul's
   * `consul-network-segment: ""` is always there.
   */
  readonly nodeMeta?: Readonly<Record<string, string>>;
}

/** Where {@link RegistryServer.listen} binds. */
export interface ListenOptions {
  /** TCP port; 0 picks a free one. Default 8500, Consul's. */
  readonly port?: number;
  /** Interface to bind; default `127.0.0.1`. */
  readonly host?: string;
}

/** Where a listening server can be reached. */
export interface ListeningAddress {
  readonly host: string;
  readonly port: number;
  /** The base URL, e.g. `http://127.0.0.1:8500`. */
  readonly url: string;
}

/**
 * The Trellis registry server: a subset of Consul's HTTP API (agent service register and
 * deregister, TTL check pass/warn/fail, health/service with `?passing`) that the official
 * `consul` npm client and other Consul tools use unchanged.
 *
 * @throws ConfigError from the constructor for an invalid option, naming it.
 * @example
 * const server = new RegistryServer();
 * const { url } = await server.listen({ port: 8500 });
 * // ... new Consul({ host: '127.0.0.1', port: 8500 }) works against it
 * await server.close();
 */
export class RegistryServer implements Closeable {
  readonly #app: FastifyInstance;
  readonly #catalog: Catalog;
  readonly #blocking: BlockingQueries;
  readonly #kv = new KvStore();
  #address: ListeningAddress | undefined;
  #listening: Promise<ListeningAddress> | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: RegistryServerOptions = {}) {
    const logLevel = options.logLevel ?? 'info';
    if (!logLevels.includes(logLevel)) {
      throw new ConfigError('logLevel', `must be one of ${logLevels.join(', ')}; got "${String(logLevel)}"`);
    }
    const node: NodeInfo = {
      id: randomUUID(),
      name: nonEmpty('nodeName', options.nodeName, 'trellis'),
      datacenter: nonEmpty('datacenter', options.datacenter, 'dc1'),
      address: nonEmpty('nodeAddress', options.nodeAddress, '127.0.0.1'),
      meta: nodeMeta(options.nodeMeta),
    };
    this.#catalog = new Catalog({ clock: options.clock ?? systemClock });
    this.#blocking = new BlockingQueries({ clock: options.clock ?? systemClock });
    this.#catalog.onChange((change) => this.#blocking.notify([`service:${change.service}`]));
    this.#kv.onChange((change) => this.#blocking.notify(change.keys.map((key) => `kv:${key}`)));
    this.#app = Fastify({
      // stderr, so that stdout carries only what the CLI prints for other processes to read.
      logger: { level: logLevel, stream: process.stderr },
      logController: new LogController({ disableRequestLogging: true }),
      // Blocking queries will hold a request for minutes; no server timeout may cut them.
      requestTimeout: 0,
      connectionTimeout: 0,
      // Idle keep-alive sockets outlive clients' pool timeouts, so the server is never the one
      // closing a socket a client is about to reuse. This never cuts a request in progress.
      keepAliveTimeout: 72_000,
      forceCloseConnections: 'idle',
    });
    registerHttpApi(this.#app, { catalog: this.#catalog, blocking: this.#blocking, kv: this.#kv, node });
    const log = this.#app.log;
    this.#catalog.onChange((change: CatalogChange) => {
      if (change.type === 'check') {
        const level = change.status === 'critical' ? 'info' : 'debug';
        log[level]({ check: change.checkId, status: change.status, output: change.output }, 'check status changed');
      } else if (change.type === 'check-deregistered') {
        log.info({ check: change.checkId }, 'check deregistered');
      } else {
        log.info(
          { service: change.service, id: change.serviceId, ...('reason' in change ? { reason: change.reason } : {}) },
          `service ${change.type}`,
        );
      }
    });
  }

  /** Blocking queries being held now. */
  get heldQueries(): number {
    return this.#blocking.waiting;
  }

  /** Where the server listens, once {@link listen} resolved. */
  get address(): ListeningAddress | undefined {
    return this.#address;
  }

  /**
   * Starts listening.
   * @returns the bound address; with `port: 0`, the port actually chosen.
   * @throws ConfigError for a port outside 0..65535; Error (EADDRINUSE, ...) when binding
   *   fails; Error when called twice or after {@link close}.
   */
  listen(options: ListenOptions = {}): Promise<ListeningAddress> {
    const port = options.port ?? 8500;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      return Promise.reject(new ConfigError('port', `must be an integer from 0 to 65535; got ${port}`));
    }
    if (this.#closing !== undefined) return Promise.reject(new Error('RegistryServer.listen: the server is closed'));
    if (this.#listening !== undefined) return Promise.reject(new Error('RegistryServer.listen: already listening'));
    const host = options.host ?? '127.0.0.1';
    this.#listening = this.#app.listen({ port, host }).then(
      () => {
        const bound = this.#app.server.address() as AddressInfo;
        const urlHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
        this.#address = { host: bound.address, port: bound.port, url: `http://${urlHost}:${bound.port}` };
        return this.#address;
      },
      (error: unknown) => {
        // A failed bind (port taken) may be retried.
        this.#listening = undefined;
        throw error;
      },
    );
    return this.#listening;
  }

  /** Stops listening (finishing requests in progress) and cancels every timer. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        // Held blocking queries are answered now, or closing would wait out their ?wait.
        this.#blocking.close();
        await this.#app.close();
      } finally {
        this.#catalog.close();
        this.#kv.close();
      }
    })();
    return this.#closing;
  }
}

function nonEmpty(field: string, value: string | undefined, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value === '') throw new ConfigError(field, 'must be a non-empty string');
  return value;
}
