import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { ConfigError, systemClock, type Clock, type Closeable } from '@trellis/core';
import { AclInputError, AclStore } from './acl/acl-store.js';
import { AnswerCache } from './http/answer-cache.js';
import { defaultMaxConnsPerClient, limitConnectionsPerClient, type ConnectionCount } from './http/connection-limit.js';
import { BlockingQueries } from './http/blocking-query.js';
import { Catalog, topicsOf, type CatalogChange } from './catalog/catalog.js';
import { nodeMeta, type NodeInfo } from './catalog/consul-json.js';
import { advertiseAddress, datacenterName, nodeName } from './catalog/node-identity.js';
import { maxParamLength } from './catalog/service-definition.js';
import { attachDurableState, storedNodeId } from './persistence/durable-state.js';
import { registerHttpApi } from './http/http-api.js';
import { KvStore } from './kv/kv-store.js';
import { RegistryServerMetrics } from './metrics/server-metrics.js';
import { DataDirError } from './persistence/data-dir.js';
import { persistedRecordSchemas } from './persistence/persisted-records.js';
import { StateJournal } from './persistence/state-journal.js';
import { nodeSessionsTopic, sessionTopic } from './session/session-api.js';
import { SessionStore } from './session/session-store.js';

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
  /**
   * The node name Consul clients see in every entry (`-node` of a Consul agent); default the
   * host name, as Consul's. At most 100 characters, no "/", spaces or control characters.
   */
  readonly nodeName?: string;
  /** The datacenter name (`-datacenter`), lower-cased, `[a-z0-9-_]`; default `dc1`. */
  readonly datacenter?: string;
  /**
   * The node's address (`-advertise`), which Consul clients use for a service registered with
   * no Address: an IP address, not `0.0.0.0` or `::`; default `127.0.0.1`.
   */
  readonly nodeAddress?: string;
  /**
   * Metadata of the node, which `?node-meta=key:value` filters match; Consul's
   * `consul-network-segment: ""` is always there.
   */
  readonly nodeMeta?: Readonly<Record<string, string>>;
  /**
   * Where state is kept across restarts (created when missing). Every mutating request is
   * answered only once its changes are fdatasynced to a journal there. Default: none, state
   * is kept in memory only.
   */
  readonly dataDir?: string;
  /** The journal is compacted into a snapshot past this many bytes; default 16 MiB. */
  readonly compactAfterBytes?: number;
  /** Consul-style ACL tokens; off by default (every request allowed). See {@link AclOptions}. */
  readonly acl?: AclOptions;
  /**
   * Sessions one node may hold at once; default 10,000. Consul has no cap; past this one,
   * `/v1/session/create` answers 429.
   */
  readonly maxSessionsPerNode?: number;
  /**
   * Accept and run script checks (`Args`), as Consul's `-enable-script-checks`. Off by default:
   * anyone who can register a check could then run any program as this server's user.
   */
  readonly enableScriptChecks?: boolean;
  /**
   * Bytes of cached read answers (plain and gzipped) kept at most, least recently read out
   * first; default 64 MiB.
   */
  readonly answerCacheMaxBytes?: number;
  /**
   * Connections one client address may hold open, as Consul's `http_max_conns_per_client`;
   * one more is answered 429 and closed. Default 200; 0 turns the cap off.
   */
  readonly httpMaxConnsPerClient?: number;
  /**
   * Time a client has to send a whole request, headers and body, before it is answered 408
   * and closed; default 30 s. Blocking queries are not cut: the time ends once the request is in.
   */
  readonly requestTimeoutMs?: number;
  /** Time a client has to send a request's headers; default 10 s, at most `requestTimeoutMs`. */
  readonly headersTimeoutMs?: number;
  /**
   * The server's own metrics on `GET /metrics` and Consul's `GET /v1/agent/metrics?format=prometheus`
   * (see docs/observability.md); `false` turns them off, `processMetrics: false` leaves out
   * prom-client's process series. Default on, with process metrics.
   */
  readonly metrics?: false | { readonly processMetrics?: boolean };
}

/**
 * What {@link RegistryServer.stats} reports: the sizes of everything that grows with requests,
 * so that a test or a dashboard can see them level off.
 */
export interface RegistryServerStats {
  /** Blocking queries held now. */
  readonly heldQueries: number;
  /** Read answers cached, and their bytes (plain and gzipped). */
  readonly answerCacheEntries: number;
  readonly answerCacheBytes: number;
  /** Deleted KV keys whose tombstone is kept (reaped 15 minutes after the deletion). */
  readonly kvTombstones: number;
  /** Service names whose last index is kept (reaped 15 minutes after the last one is gone). */
  readonly topicIndexes: number;
  /** HTTP connections open now, and the client addresses they come from. */
  readonly connections: number;
  readonly connectedClients: number;
}

/** ACLs of {@link RegistryServer}: off unless `enabled`; then requests need a token's rights. */
export interface AclOptions {
  readonly enabled: boolean;
  /** The secret of the first management token; required when enabled (there is no other way in). */
  readonly initialManagementToken?: string;
  /** What a token gets on names none of its rules match; default `deny`. */
  readonly defaultPolicy?: 'deny' | 'allow';
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
  readonly #kv: KvStore;
  readonly #answers: AnswerCache;
  readonly #sessions: SessionStore;
  readonly #connections: () => ConnectionCount;
  readonly #acl: AclStore | undefined;
  readonly #journal: StateJournal | undefined;
  readonly #metrics: RegistryServerMetrics | undefined;
  #address: ListeningAddress | undefined;
  #listening: Promise<ListeningAddress> | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: RegistryServerOptions = {}) {
    const logLevel = options.logLevel ?? 'info';
    this.#acl = aclStore(options.acl);
    if (!logLevels.includes(logLevel)) {
      throw new ConfigError('logLevel', `must be one of ${logLevels.join(', ')}; got "${String(logLevel)}"`);
    }
    // Checked before the data directory is opened, so that a bad option leaves no lock behind.
    const name = nodeName(options.nodeName);
    const datacenter = datacenterName(options.datacenter);
    const address = advertiseAddress(options.nodeAddress);
    const meta = nodeMeta(options.nodeMeta);
    const limits = connectionLimits(options);
    const answerCacheLimit = positive('answerCacheMaxBytes', options.answerCacheMaxBytes);
    const maxSessions = maxSessionsPerNode(options.maxSessionsPerNode);
    let loaded: ReturnType<typeof StateJournal.open> | undefined;
    if (options.dataDir !== undefined) {
      loaded = StateJournal.open({
        dir: options.dataDir,
        ...(options.compactAfterBytes === undefined ? {} : { compactAfterBytes: options.compactAfterBytes }),
        ...(logLevel === 'silent' ? { warn: () => undefined } : {}),
        schemas: persistedRecordSchemas,
        onSynced: (ms) => this.#metrics?.synced(ms),
      });
      this.#journal = loaded.journal;
    }
    const node: NodeInfo = {
      id: (loaded === undefined ? undefined : storedNodeId(loaded.state)) ?? randomUUID(),
      name,
      datacenter,
      address,
      meta,
    };
    const clock = options.clock ?? systemClock;
    this.#catalog = new Catalog({ clock });
    const catalog = this.#catalog;
    this.#blocking = new BlockingQueries({
      clock,
      // A service name's index may go once no instance of it is left.
      isGone: (topic) => !topic.startsWith('service:') || catalog.health(topic.slice('service:'.length)).length === 0,
      onNotified: (woken) => this.#metrics?.woken(woken),
    });
    this.#kv = new KvStore({ clock });
    this.#answers = new AnswerCache(answerCacheLimit);
    this.#sessions = sessionStore(options, maxSessions, node, this.#kv, this.#catalog);
    this.#metrics =
      options.metrics === false
        ? undefined
        : new RegistryServerMetrics(
            {
              catalog: this.#catalog,
              kv: this.#kv,
              blocking: this.#blocking,
              answers: this.#answers,
              connections: () => this.#connections().open,
            },
            options.metrics,
          );
    if (loaded !== undefined) {
      try {
        attachDurableState(loaded.journal, loaded.state, {
          catalog: this.#catalog,
          kv: this.#kv,
          sessions: this.#sessions,
          nodeId: node.id,
          acl: this.#acl,
          blocking: this.#blocking,
        });
        // Service names reaped before the restart are not known; none had a larger index.
        this.#blocking.raiseIndexFloor(this.#catalog.index);
      } catch (error) {
        void this.#catalog.close();
        this.#sessions.close();
        // At once, so that the lock is gone when the constructor throws, and its failure kept.
        let closeError: unknown;
        try {
          loaded.journal.abandon();
        } catch (caught) {
          closeError = caught;
        }
        throw restoreFailure(options.dataDir ?? '', error, closeError);
      }
    }
    this.#catalog.onChange((change) => this.#blocking.notify(topicsOf(change), change.index));
    this.#kv.onChange((change) => this.#blocking.notify(change.keys.map((key) => `kv:${key}`)));
    this.#sessions.onChange(({ session }) =>
      this.#blocking.notify([sessionTopic(session.id), nodeSessionsTopic(session.node)]),
    );
    // A session tied to a check ends when the check goes critical or goes away (with its service).
    this.#catalog.onChange((change) =>
      this.#sessions.checksChanged(
        node.name,
        change.type === 'check' || change.type === 'check-deregistered' ? [change.checkId] : undefined,
      ),
    );
    this.#app = Fastify({
      // stderr, so that stdout carries only what the CLI prints for other processes to read.
      logger: { level: logLevel, stream: process.stderr },
      logController: new LogController({ disableRequestLogging: true }),
      // Time to receive a whole request (headers and body), so that a body trickled a byte a
      // second is cut (408). Node stops this clock once the request is in: a blocking query
      // holding its answer for minutes is not cut. No idle timeout on the socket either, since
      // a held query's socket is idle by design.
      requestTimeout: limits.requestTimeoutMs,
      connectionTimeout: 0,
      http: {
        headersTimeout: limits.headersTimeoutMs,
        // How often Node looks for requests past those timeouts: the cut comes at most this late.
        connectionsCheckingInterval: limits.checkingIntervalMs,
      },
      // Idle keep-alive sockets outlive clients' pool timeouts, so the server is never the one
      // closing a socket a client is about to reuse. This never cuts a request in progress.
      keepAliveTimeout: 72_000,
      forceCloseConnections: 'idle',
      // Fastify's default (100) answered 414 for IDs that registration accepted: any name or ID
      // registration accepts must fit in a route again.
      routerOptions: { maxParamLength },
    });
    this.#connections = limitConnectionsPerClient(this.#app.server, limits.maxConnsPerClient);
    const journal = this.#journal;
    if (journal !== undefined) {
      // Acknowledged means durable: a mutating request is answered once its changes are on disk.
      this.#app.addHook('onSend', async (request, reply, payload) => {
        if (request.method === 'GET' || request.method === 'HEAD') return payload;
        try {
          await journal.durable();
          return payload;
        } catch (error) {
          // Never acknowledge what is not on disk; the change may be lost on the next restart.
          request.log.error({ err: error }, 'journal write failed');
          reply.code(500).type('text/plain; charset=utf-8');
          return 'state could not be written to the data directory';
        }
      });
    }
    registerHttpApi(this.#app, {
      catalog: this.#catalog,
      blocking: this.#blocking,
      answers: this.#answers,
      kv: this.#kv,
      sessions: this.#sessions,
      node,
      acl: this.#acl,
      enableScriptChecks: options.enableScriptChecks === true,
      metrics: this.#metrics,
    });
    const log = this.#app.log;
    if (this.#acl?.initialTokenRevoked === true) {
      log.warn('the initial management token was rotated or deleted: the secret given for it grants nothing');
    }
    this.#catalog.onChange((change: CatalogChange) => {
      if (change.type === 'check') {
        const level = change.status === 'critical' ? 'info' : 'debug';
        log[level]({ check: change.checkId, status: change.status, output: change.output }, 'check status changed');
      } else if (change.type === 'check-deregistered') {
        log.info({ check: change.checkId }, 'check deregistered');
      } else if (change.type === 'node') {
        log.info({ node: change.node, services: change.services }, 'catalog node changed');
      } else {
        log.info(
          { service: change.service, id: change.serviceId, ...('reason' in change ? { reason: change.reason } : {}) },
          `service ${change.type}`,
        );
      }
    });
  }

  /** The ACL tokens and policies (with `onChange` and export/import for a journal); undefined with ACLs off. */
  get acl(): AclStore | undefined {
    return this.#acl;
  }

  /** Blocking queries being held now. */
  get heldQueries(): number {
    return this.#blocking.waiting;
  }

  /**
   * The sizes of the server's maps that grow with requests (cache, tombstones, indexes).
   * @example
   * const server = new RegistryServer();
   * const { answerCacheBytes, kvTombstones } = server.stats();
   */
  stats(): RegistryServerStats {
    const cache = this.#answers.stats;
    return {
      heldQueries: this.#blocking.waiting,
      answerCacheEntries: cache.entries,
      answerCacheBytes: cache.bytes,
      kvTombstones: this.#kv.tombstoneCount,
      topicIndexes: this.#blocking.topicIndexes,
      connections: this.#connections().open,
      connectedClients: this.#connections().clients,
    };
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
        this.#sessions.close();
        this.#kv.close();
        // Its HTTP checks' requests wind down before the server says it is closed.
        await this.#catalog.close();
        await this.#journal?.close();
      }
    })();
    return this.#closing;
  }
}

// Both failures are kept: the one that stopped the start, and the journal's that followed it.
function restoreFailure(dir: string, error: unknown, closeError: unknown): DataDirError {
  if (closeError === undefined) {
    return new DataDirError(dir, `cannot restore its state (${String(error)})`, { cause: error });
  }
  const closing = closeError instanceof Error ? closeError.message : 'unknown error';
  return new DataDirError(dir, `cannot restore its state (${String(error)}), nor close its journal (${closing})`, {
    cause: new AggregateError([error, closeError], 'restoring the state failed, and closing the journal too'),
  });
}

function maxSessionsPerNode(max: number | undefined): number | undefined {
  if (max !== undefined && (!Number.isSafeInteger(max) || max < 1)) {
    throw new ConfigError('maxSessionsPerNode', `must be a positive integer; got ${String(max)}`);
  }
  return max;
}

function sessionStore(
  options: RegistryServerOptions,
  max: number | undefined,
  node: NodeInfo,
  kv: KvStore,
  catalog: Catalog,
): SessionStore {
  return new SessionStore({
    kv,
    clock: options.clock ?? systemClock,
    ...(max === undefined ? {} : { maxSessionsPerNode: max }),
    nodeExists: (name) => name === node.name || catalog.otherNodes.has(name),
    // serfHealth is this node's own check, always passing here; another node has the checks
    // registered for it (Consul ESM's), serfHealth only if registered so.
    checkStatus: (name, checkId) => {
      if (name !== node.name) return catalog.otherNodes.checksOf(name).find((check) => check.id === checkId)?.status;
      return checkId === 'serfHealth' ? 'passing' : catalog.check(checkId)?.status;
    },
  });
}

function aclStore(options: AclOptions | undefined): AclStore | undefined {
  if (options === undefined || !options.enabled) return undefined;
  const { initialManagementToken, defaultPolicy = 'deny' } = options;
  if (defaultPolicy !== 'deny' && defaultPolicy !== 'allow') {
    throw new ConfigError('acl.defaultPolicy', `must be "deny" or "allow"; got "${String(defaultPolicy)}"`);
  }
  if (initialManagementToken === undefined) {
    throw new ConfigError('acl.initialManagementToken', 'is required with ACLs enabled: no token could do anything');
  }
  try {
    return new AclStore({ initialManagementToken, defaultPolicy });
  } catch (error) {
    if (error instanceof AclInputError) throw new ConfigError('acl.initialManagementToken', error.message);
    throw error;
  }
}

function connectionLimits(options: RegistryServerOptions): {
  maxConnsPerClient: number;
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  checkingIntervalMs: number;
} {
  const count = (field: string, value: number | undefined, fallback: number, min: number): number => {
    if (value === undefined) return fallback;
    if (!Number.isSafeInteger(value) || value < min) {
      throw new ConfigError(field, `must be an integer of at least ${min}; got ${String(value)}`);
    }
    return value;
  };
  const maxConnsPerClient = count('httpMaxConnsPerClient', options.httpMaxConnsPerClient, defaultMaxConnsPerClient, 0);
  const requestTimeoutMs = count('requestTimeoutMs', options.requestTimeoutMs, 30_000, 1);
  const headersTimeoutMs = count('headersTimeoutMs', options.headersTimeoutMs, Math.min(10_000, requestTimeoutMs), 1);
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new ConfigError(
      'headersTimeoutMs',
      `must be at most requestTimeoutMs (${requestTimeoutMs}); got ${headersTimeoutMs}`,
    );
  }
  // A quarter of the shorter timeout, so that a cut comes at most 25% late; Node's default is 30 s.
  const checkingIntervalMs = Math.min(5_000, Math.max(10, Math.floor(headersTimeoutMs / 4)));
  return { maxConnsPerClient, requestTimeoutMs, headersTimeoutMs, checkingIntervalMs };
}

function positive(field: string, value: number | undefined): { maxBytes?: number } {
  if (value === undefined) return {};
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ConfigError(field, `must be a non-negative integer; got ${value}`);
  }
  return { maxBytes: value };
}
