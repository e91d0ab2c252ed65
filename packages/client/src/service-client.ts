import {
  compose,
  type Attempt,
  NoInstancesError,
  UpstreamStatusError,
  type Call,
  type Filter,
  type Reply,
  type Service,
  type ServiceInstance,
} from '@trellis/core';
import { RoundRobin, type Strategy } from '@trellis/loadbalancer';
import type { Discovery } from '@trellis/registry';
import { AxiosTransport } from './axios-transport.js';
import { failover } from './failover.js';
import type { Transport } from './transport.js';

export interface ServiceClientOptions {
  /** The service to call, by the name it registers under. */
  readonly service: string;
  /** Where instances are found. */
  readonly discovery: Discovery;
  /** How an instance is chosen; default {@link RoundRobin}. */
  readonly strategy?: Strategy;
  /** How a call is sent; default a new {@link AxiosTransport}, closed with the client. */
  readonly transport?: Transport;
  /** Filters around every call, outermost first. */
  readonly filters?: readonly Filter[];
  /**
   * Filters around each attempt, once its instance is chosen (a per-instance breaker, a
   * timeout, fault injection), outermost first; the transport is innermost.
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
 * Calls one service by name: each call goes through the filters, then picks a healthy
 * instance from discovery with the strategy, and sends it with the transport. The pipeline is
 * built once, in the constructor.
 *
 * @example
 * const users = new ServiceClient({ service: 'users', discovery });
 * const user = await users.get<User>('/users/1');
 */
export class ServiceClient {
  readonly service: string;
  readonly #discovery: Discovery;
  readonly #strategy: Strategy;
  readonly #transport: Transport;
  readonly #ownsTransport: boolean;
  readonly #pipeline: Service;
  readonly #send: Service<Attempt, Reply>;

  constructor(options: ServiceClientOptions) {
    this.service = options.service;
    this.#discovery = options.discovery;
    this.#strategy = options.strategy ?? new RoundRobin();
    this.#ownsTransport = options.transport === undefined;
    this.#transport = options.transport ?? new AxiosTransport();
    const transport = this.#transport;
    this.#send = compose(options.attemptFilters ?? [], (attempt) => transport.send(attempt, attempt.instance));
    this.#pipeline = compose([...(options.filters ?? []), failover()], (call) => this.#attempt(call));
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

  /** Releases the transport's connections, when the client created the transport. */
  async close(): Promise<void> {
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
    const instance = this.#strategy.select(candidates, call);
    if (instance === undefined) throw noInstance(call.service, known);
    return this.#send({ ...call, instance });
  }
}

function noInstance(service: string, known: readonly ServiceInstance[]): NoInstancesError {
  return known.length === 0
    ? new NoInstancesError(service)
    : new NoInstancesError(service, `all ${known.length} known instances failed to connect`);
}
