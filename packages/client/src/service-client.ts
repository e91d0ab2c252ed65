import {
  compose,
  NoInstancesError,
  systemClock,
  UpstreamStatusError,
  type Attempt,
  type Call,
  type Clock,
  type Filter,
  type Reply,
  type Service,
  type ServiceInstance,
} from '@trellis/core';
import {
  attemptTimeout,
  CircuitBreakerRegistry,
  deadline,
  instanceCircuitBreaker,
  retry,
  withCall,
  type RetryOptions,
} from '@trellis/resilience';
import {
  LoadBalancer,
  strategyFeedback,
  type RoutingRules,
  type Strategy,
  type StrategyName,
} from '@trellis/loadbalancer';
import type { Discovery } from '@trellis/registry';
import { createTransport, type TransportName } from './create-transport.js';
import { failover } from './failover.js';
import type { Transport } from './transport.js';

export interface ServiceClientOptions {
  /** The service to call, by the name it registers under. */
  readonly service: string;
  /** Where instances are found. */
  readonly discovery: Discovery;
  /** This process's own service name, which routing rules may match on. */
  readonly caller?: string;
  /**
   * How an instance is chosen: a strategy object, or the name of one for the default
   * {@link LoadBalancer} (which also applies `rules` and skips instances whose breaker is open).
   * Default "p2c-peak-ewma".
   */
  readonly strategy?: Strategy | StrategyName;
  /** Routing rules of the default load balancer; default none. */
  readonly rules?: RoutingRules;
  /**
   * Per-instance circuit breakers; an instance whose breaker opens is ejected from load
   * balancing until a probe succeeds. Share one registry among the clients of a process.
   * Default a registry of this client's own, with its defaults; `false` for none.
   */
  readonly breakers?: CircuitBreakerRegistry | false;
  /**
   * Retries of failed attempts on other instances, within a retry budget; default `retry()`'s
   * defaults. `false` keeps only failover: a refused connection, or an idempotent call whose
   * connection broke, goes to another instance at once.
   */
  readonly retry?: RetryOptions | false;
  /** Each attempt is abandoned (and its request cancelled) after this long; default 10 000 ms, `false` for none. */
  readonly attemptTimeoutMs?: number | false;
  /** The whole call, retries included, is abandoned after this long; default none. */
  readonly deadlineMs?: number;
  /** Time for breakers, timeouts, retries and latency averages; default the system clock. */
  readonly clock?: Clock;
  /**
   * How a call is sent: a transport, or the name of one to make ("undici": a keep-alive pool
   * per instance, several times faster); default a new `AxiosTransport`. One made by
   * name is closed with the client.
   */
  readonly transport?: Transport | TransportName;
  /** Filters around every call (fallback, rate limit, bulkhead, ...), outermost first. */
  readonly filters?: readonly Filter[];
  /**
   * Filters around each attempt, once its instance is chosen (fault injection, ...), outermost
   * first, inside the client's own breaker and timeout; the transport is innermost.
   */
  readonly attemptFilters?: readonly Filter<Attempt, Reply>[];
}

/** One request, as the caller writes it. */
export interface ServiceRequest {
  readonly method?: string;
  /** Path with its query string, e.g. "/users/1?fields=name". */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: unknown;
  readonly signal?: AbortSignal;
}

/**
 * Calls one service by name, governed: each call goes through the caller's filters, an optional
 * deadline and retries within a budget; each attempt picks an instance from discovery (routing
 * rules, ejected instances skipped, then the strategy: P2C over peak EWMA by default), then
 * goes through that instance's circuit breaker and a timeout, and is sent with the transport.
 * The pipeline is built once, in the constructor.
 *
 * @throws ConfigError from the constructor for an unknown strategy name, invalid rules or
 *   policy options, naming the field.
 * @example
 * const users = new ServiceClient({ service: 'users', discovery });
 * const user = await users.get<User>('/users/1');
 */
export class ServiceClient {
  readonly service: string;
  /** The strategy that picks instances (a {@link LoadBalancer} unless one was given). */
  readonly strategy: Strategy;
  /** The per-instance breakers, or undefined with `breakers: false`. */
  readonly breakers: CircuitBreakerRegistry | undefined;
  readonly #discovery: Discovery;
  readonly #transport: Transport;
  readonly #ownsTransport: boolean;
  readonly #ownsBreakers: boolean;
  readonly #pipeline: Service;
  readonly #send: Service<Attempt, Reply>;

  constructor(options: ServiceClientOptions) {
    const clock = options.clock ?? systemClock;
    this.service = options.service;
    this.#discovery = options.discovery;
    this.#ownsBreakers = options.breakers === undefined;
    this.breakers =
      options.breakers === false ? undefined : (options.breakers ?? new CircuitBreakerRegistry({ clock }));
    const given = options.strategy;
    this.strategy =
      given !== undefined && typeof given !== 'string'
        ? given
        : new LoadBalancer({
            clock,
            ...(given === undefined ? {} : { strategy: given }),
            ...(options.rules === undefined ? {} : { rules: options.rules }),
            ...(options.caller === undefined ? {} : { caller: options.caller }),
            ...(this.breakers === undefined ? {} : { health: this.breakers }),
          });
    this.#ownsTransport = options.transport === undefined || typeof options.transport === 'string';
    this.#transport = createTransport(options.transport, { service: options.service, changes: options.discovery });
    const transport = this.#transport;

    const timeoutMs = options.attemptTimeoutMs ?? 10_000;
    const attemptFilters: Filter<Attempt, Reply>[] = [
      // First, so that the latency the strategy learns includes what the filters below add.
      ...(this.strategy.usesFeedback ? [strategyFeedback(this.strategy, clock)] : []),
      ...(this.breakers === undefined ? [] : [instanceCircuitBreaker(this.breakers)]),
      ...(timeoutMs === false ? [] : [attemptTimeout({ timeoutMs, clock })]),
      ...(options.attemptFilters ?? []),
    ];
    this.#send = compose(attemptFilters, (attempt) => transport.send(attempt, attempt.instance));
    const filters: Filter[] = [
      ...(options.filters ?? []),
      ...(options.deadlineMs === undefined ? [] : [deadline({ timeoutMs: options.deadlineMs, clock })]),
      // Retry covers what failover does, within its budget; failover alone when retries are off.
      options.retry === false ? failover() : retry({ clock, ...options.retry }),
    ];
    this.#pipeline = compose(filters, (call) => this.#attempt(call));
  }

  /**
   * Sends a request and returns the reply, whatever its status.
   * @throws NoInstancesError when no healthy instance is known.
   * @throws ConnectionError when the chosen instances did not answer.
   * @throws RegistryUnavailableError when the service was never found and the registry is down.
   */
  request<T = unknown>(request: ServiceRequest): Promise<Reply<T>> {
    const call: Call = {
      service: this.service,
      method: (request.method ?? 'GET').toUpperCase(),
      path: request.path,
      headers: request.headers ?? {},
      ...(request.body === undefined ? {} : { body: request.body }),
      ...(request.signal === undefined ? {} : { signal: request.signal }),
    };
    return this.#pipeline(call) as Promise<Reply<T>>;
  }

  /**
   * GETs `path` and returns the decoded body.
   * @throws UpstreamStatusError for a status outside 2xx, and what {@link request} throws.
   */
  get<T = unknown>(path: string, options: Omit<ServiceRequest, 'path' | 'method' | 'body'> = {}): Promise<T> {
    return this.#bodyOf<T>({ ...options, path, method: 'GET' });
  }

  /**
   * POSTs `body` (as JSON) to `path` and returns the decoded answer.
   * @throws UpstreamStatusError for a status outside 2xx, and what {@link request} throws.
   */
  post<T = unknown>(
    path: string,
    body: unknown,
    options: Omit<ServiceRequest, 'path' | 'method' | 'body'> = {},
  ): Promise<T> {
    return this.#bodyOf<T>({ ...options, path, method: 'POST', body });
  }

  /** Releases the transport's connections and the breakers, when the client created them. */
  async close(): Promise<void> {
    if (this.#ownsBreakers) this.breakers?.dispose();
    if (this.#ownsTransport) await this.#transport.close();
  }

  async #bodyOf<T>(request: ServiceRequest): Promise<T> {
    const reply = await this.request<T>(request);
    if (reply.status < 200 || reply.status > 299) {
      throw new UpstreamStatusError(this.service, reply.instance.id, reply.status, reply.body);
    }
    return reply.body;
  }

  async #attempt(call: Call): Promise<Reply> {
    const known = await this.#discovery.instances(call.service);
    const candidates = call.avoid === undefined ? known : known.filter((i) => !call.avoid?.has(i.id));
    const instance = this.strategy.select(candidates, call);
    if (instance === undefined) throw noInstance(call.service, known, candidates);
    // withCall keeps a deadline's lazily made signal, which a spread would drop.
    return this.#send(withCall(call, { instance }) as Attempt);
  }
}

function noInstance(
  service: string,
  known: readonly ServiceInstance[],
  candidates: readonly ServiceInstance[],
): NoInstancesError {
  if (known.length === 0) return new NoInstancesError(service);
  if (candidates.length === 0) {
    return new NoInstancesError(service, `all ${known.length} known instances failed this call`);
  }
  return new NoInstancesError(service, `none of the ${known.length} known instances matches the call's route`);
}
