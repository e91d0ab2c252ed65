// The givens of packages/registry-server's examples (see all.ts).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AclStore } from '../../../packages/registry-server/src/acl/acl-store.js';
import type { AnswerCache } from '../../../packages/registry-server/src/http/answer-cache.js';
import type { BlockingQueries } from '../../../packages/registry-server/src/http/blocking-query.js';
import type {
  Catalog,
  PersistedCheck,
  PersistedService,
} from '../../../packages/registry-server/src/catalog/catalog.js';
import type { NodeInfo } from '../../../packages/registry-server/src/catalog/consul-json.js';
import type { KvEntry, KvStore } from '../../../packages/registry-server/src/kv/kv-store.js';
import type { SessionStore } from '../../../packages/registry-server/src/session/session-store.js';
import type { ServerContext } from '../../../packages/registry-server/src/http/server-context.js';
import type { HttpCheckResult } from '../../../packages/registry-server/src/checks/http-check-runner.js';
import type { HttpCheckSpec } from '../../../packages/registry-server/src/catalog/service-definition.js';

export { randomUUID } from 'node:crypto';
export declare const app: FastifyInstance;
export declare const request: FastifyRequest<{ Querystring: Record<string, string> }>;
export declare const context: ServerContext;
export declare const store: AclStore;
export declare const acl: AclStore;
export declare const cache: AnswerCache;
export declare const blocking: BlockingQueries;
export declare const catalog: Catalog;
export declare const kv: KvStore;
export declare const sessions: SessionStore;
export declare const node: NodeInfo;
export declare const spec: HttpCheckSpec;
export declare const dir: string;
export declare const name: string;
export declare const serviceIndex: number;
export declare const acceptsGzip: boolean;
export declare const passing: boolean;
export declare const tags: string[];
export declare const persistedWeb: PersistedService;
export declare const persistedWebCheck: PersistedCheck;
/** Called for an answer's entries, or passed as them. */
export declare const entries: (() => KvEntry[]) & Iterable<KvEntry>;
export declare const prefix: string;
export declare function handler(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply>;
export declare function ttlExpired(checkId: string): void;
export declare function reapDue(checkId: string): void;
export declare function runResult(checkId: string, result: HttpCheckResult): void;
export declare const body: string;
export declare const catalogIndex: number;
