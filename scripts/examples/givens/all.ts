// The givens of every example: the names that docs snippets and JSDoc `@example`s use without
// defining them, as a reader takes them from the prose ("given a discovery", "a call"). Every
// export of the @trellis packages is in scope already, so only add here, with its type, what
// an example assumes. A package's own givens go in givens/<package>.ts; a single docs block's
// in a `<!-- check-prelude ... -->` comment before it. See docs/README.md.
import type { FastifyReply } from 'fastify';
import type { TrellisApp } from '@trellis/app';
import type { ServiceClient, Transport } from '@trellis/client';
import type { Call, CallContext, Clock, Filter, Reply, Service, ServiceInstance } from '@trellis/core';
import type {
  AsyncRateLimiter,
  CircuitBreakerRegistry,
  ConcurrencyLimit,
  PerKey,
  RateLimiter,
  RetryBudget,
  TokenBucket,
} from '@trellis/resilience';
import type { RoutingRules } from '@trellis/loadbalancer';
import type { Discovery, Registry } from '@trellis/registry';

/** What `users.get<User>(...)` returns in the examples. */
export interface User {
  readonly id: string;
  readonly name: string;
}

// The governed system.
export declare const app: TrellisApp;
export declare const discovery: Discovery;
export declare const registry: Registry;
export declare const users: ServiceClient;
export declare const breakers: CircuitBreakerRegistry;
export declare const perInstance: CircuitBreakerRegistry;
export declare const perService: CircuitBreakerRegistry;
export declare const budget: RetryBudget;
export declare const rules: RoutingRules;
export declare const canaryRules: RoutingRules;
export declare const transport: Transport;

// One call on its way.
export declare const call: Call;
export declare const context: CallContext;
export declare const instance: ServiceInstance;
export declare const instances: readonly ServiceInstance[];
export declare const healthy: readonly ServiceInstance[];
export declare const a: ServiceInstance;
export declare const b: ServiceInstance;
export declare const signal: AbortSignal;
export declare const controller: AbortController;
export declare const clock: Clock;
/** A seeded random source, for repeatable picks. */
export declare function seeded(seed: number): () => number;
export declare const service: Service;
export declare function send(): Promise<Reply>;
export declare const trace: Filter;
export declare const metrics: Filter;
export declare const audit: Filter;
/** A database client whose queries take an AbortSignal, as pg's and mysql2's do. */
export declare const db: { query(sql: string, options?: { readonly signal?: AbortSignal }): Promise<unknown[]> };

// Limits.
export declare const limit: ConcurrencyLimit;
export declare const limiter: RateLimiter;
/** A limiter whose decision comes later: a cluster limit on Redis. */
export declare const sharedLimiter: AsyncRateLimiter;
export declare const bucket: TokenBucket;
export declare const perUser: PerKey<TokenBucket>;
export declare const perCaller: PerKey<TokenBucket>;
export declare const userId: string;

// The application around the examples.
export declare const reply: FastifyReply;
export declare const log: Pick<Console, 'info' | 'warn' | 'error'>;
/** A metric counter, as prom-client's `Counter`. */
export declare const retries: { inc(labels: Readonly<Record<string, string | undefined>>): void };
export declare const timeouts: { inc(labels: Readonly<Record<string, string | undefined>>): void };
export declare const cache: Map<string, unknown>;
export declare const kv: { get(key: string): Promise<string | undefined> };
export declare const jsonFromKv: string;
export declare const fired: number[];
export declare const cachedAnswer: unknown;
export declare function findUser(id: string): Promise<User>;
export declare function findPost(id: string): Promise<{ readonly title: string; readonly authorId: string }>;
export declare function fetchUser(id: number): Promise<User>;
export declare function cachedUser(): User;
export declare function authorOf(request: unknown): string;
export declare function scheduleRetry(): void;
export declare function work(): Promise<void>;
