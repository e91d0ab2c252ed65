import type { AclStore } from '../acl/acl-store.js';
import type { AnswerCache } from './answer-cache.js';
import type { BlockingQueries } from './blocking-query.js';
import type { Catalog } from '../catalog/catalog.js';
import type { NodeInfo } from '../catalog/consul-json.js';
import type { KvStore } from '../kv/kv-store.js';
import type { RegistryServerMetrics } from '../metrics/server-metrics.js';
import type { SessionStore } from '../session/session-store.js';

/** What the route modules of the HTTP API read and change. */
export interface ServerContext {
  readonly catalog: Catalog;
  readonly blocking: BlockingQueries;
  /** Answers of reads, shared so that their bytes have one bound. */
  readonly answers: AnswerCache;
  readonly kv: KvStore;
  readonly sessions: SessionStore;
  readonly node: NodeInfo;
  /** The ACL tokens and policies; undefined with ACLs off (the default). */
  readonly acl?: AclStore | undefined;
  /** Whether checks with `Args` may be registered and run (`--enable-script-checks`); default false. */
  readonly enableScriptChecks?: boolean;
  /** The server's own metrics, served on /metrics; undefined with `metrics: false`. */
  readonly metrics?: RegistryServerMetrics | undefined;
}
