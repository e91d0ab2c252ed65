import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { durationBuckets, methodLabel, statusClass, unknownRoute } from '@trellis/metrics';
import type { AclDenial } from '../acl/acl-enforcement.js';
import type { Catalog } from '../catalog/catalog.js';
import type { CheckStatus } from '../catalog/service-definition.js';
import type { AnswerCache } from '../http/answer-cache.js';
import type { BlockingQueries } from '../http/blocking-query.js';
import type { KvStore } from '../kv/kv-store.js';

/** What the gauges read when the server is scraped. */
export interface ScrapedState {
  readonly catalog: Catalog;
  readonly kv: KvStore;
  readonly blocking: BlockingQueries;
  readonly answers: AnswerCache;
  readonly connections: () => number;
}

/** One request the server answered, as {@link RegistryServerMetrics.request} takes it. */
export interface AnsweredRequest {
  readonly method: string;
  /** The route template that matched (`/v1/kv/*`); undefined for a 404. */
  readonly template: string | undefined;
  readonly status: number;
  readonly durationMs: number;
  /** A read held as a blocking query (`?index=` past 0): its duration is the wait, not work. */
  readonly blocking: boolean;
}

// Watchers one change woke: 0 for most, thousands in a wake storm.
const wokenBuckets = [0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];
// An fdatasync: tens of microseconds on a page cache that lies, tens of milliseconds on a disk.
const fsyncBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const healths: readonly CheckStatus[] = ['passing', 'warning', 'critical'];

/**
 * Process metrics are per process and prom-client's collectors are never stopped (a GC
 * observer and an event-loop monitor each), so every server of a process shares one set.
 */
let processRegistry: Registry | undefined;
function processMetrics(): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/**
 * The registry server's own series: requests by route template, blocking queries held and
 * woken, the answer cache, journal fsyncs, catalog and KV sizes, ACL denials. Counters are fed
 * by the server as things happen; sizes are read from the stores at each scrape.
 */
export class RegistryServerMetrics {
  readonly registry = new Registry();
  readonly #withProcess: boolean;
  readonly #requests: Histogram<'method' | 'route' | 'status_class' | 'blocking'>;
  readonly #woken: Histogram;
  readonly #fsync: Histogram;
  readonly #denials: Counter<'reason'>;

  constructor(state: ScrapedState, options: { readonly processMetrics?: boolean } = {}) {
    this.#withProcess = options.processMetrics ?? true;
    const registers = [this.registry];
    this.#requests = new Histogram({
      name: 'http_server_request_duration_seconds',
      help: 'Duration of HTTP requests the registry served, by route template; blocking="true" for held reads.',
      labelNames: ['method', 'route', 'status_class', 'blocking'],
      buckets: [...durationBuckets],
      registers,
    });
    new Gauge({
      name: 'trellis_registry_server_blocking_queries',
      help: 'Blocking queries (reads with ?index=) held now.',
      registers,
      collect() {
        this.set(state.blocking.waiting);
      },
    });
    this.#woken = new Histogram({
      name: 'trellis_registry_server_watchers_woken',
      help: 'Held blocking queries each change woke (its _sum counts wake-ups, its _count changes).',
      buckets: wokenBuckets,
      registers,
    });
    new Gauge({
      name: 'trellis_registry_server_answer_cache_bytes',
      help: 'Bytes of cached read answers, plain and gzipped.',
      registers,
      collect() {
        this.set(state.answers.stats.bytes);
      },
    });
    new Gauge({
      name: 'trellis_registry_server_answer_cache_entries',
      help: 'Cached read answers.',
      registers,
      collect() {
        this.set(state.answers.stats.entries);
      },
    });
    this.#fsync = new Histogram({
      name: 'trellis_registry_server_journal_fsync_duration_seconds',
      help: "Duration of the journal's fdatasync, once per commit (with a data directory).",
      buckets: fsyncBuckets,
      registers,
    });
    new Gauge({
      name: 'trellis_registry_server_catalog_services',
      help: 'Service names in the catalog.',
      registers,
      collect() {
        this.set(state.catalog.serviceTags().size);
      },
    });
    new Gauge<'health'>({
      name: 'trellis_registry_server_catalog_instances',
      help: 'Service instances in the catalog, by the worst status of their checks and their node checks.',
      labelNames: ['health'],
      registers,
      collect() {
        const counts = instancesByHealth(state.catalog);
        for (const health of healths) this.set({ health }, counts.get(health) ?? 0);
      },
    });
    new Gauge({
      name: 'trellis_registry_server_kv_keys',
      help: 'Keys in the KV store.',
      registers,
      collect() {
        this.set(state.kv.size.keys);
      },
    });
    new Gauge({
      name: 'trellis_registry_server_kv_bytes',
      help: 'Bytes of the values in the KV store.',
      registers,
      collect() {
        this.set(state.kv.size.bytes);
      },
    });
    new Gauge({
      name: 'trellis_registry_server_connections',
      help: 'HTTP connections open now.',
      registers,
      collect() {
        this.set(state.connections());
      },
    });
    this.#denials = new Counter({
      name: 'trellis_registry_server_acl_denials_total',
      help: 'Requests refused by ACLs: an unknown token (token-not-found) or one without the right (permission-denied).',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of ['token-not-found', 'permission-denied'] satisfies AclDenial[])
      this.#denials.inc({ reason }, 0);
  }

  /** The content type of {@link text}: Prometheus's text format 0.0.4. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every series in Prometheus's text format, the process's included. */
  async text(): Promise<string> {
    const own = await this.registry.metrics();
    return this.#withProcess ? own + (await processMetrics().metrics()) : own;
  }

  request(request: AnsweredRequest): void {
    this.#requests.observe(
      {
        method: methodLabel(request.method),
        // Fastify's route pattern, never the path: a scan of random paths adds one series.
        route: request.template ?? unknownRoute,
        status_class: statusClass(request.status),
        blocking: request.blocking ? 'true' : 'false',
      },
      request.durationMs / 1000,
    );
  }

  readonly woken = (watchers: number): void => this.#woken.observe(watchers);
  readonly synced = (ms: number): void => this.#fsync.observe(ms / 1000);
  readonly denied = (reason: AclDenial): void => this.#denials.inc({ reason });
}

// An instance's health as Consul's ?passing sees it: the worst of its checks and its node's.
function instancesByHealth(catalog: Catalog): Map<CheckStatus, number> {
  const counts = new Map<CheckStatus, number>();
  const nodeChecks = catalog.nodeChecks();
  for (const name of catalog.serviceTags().keys()) {
    for (const record of catalog.health(name)) {
      const checks = [...(record.node?.checks ?? nodeChecks), ...record.checks];
      const health = checks.some((c) => c.status === 'critical')
        ? 'critical'
        : checks.some((c) => c.status === 'warning')
          ? 'warning'
          : 'passing';
      counts.set(health, (counts.get(health) ?? 0) + 1);
    }
  }
  return counts;
}
