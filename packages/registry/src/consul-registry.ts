import type Consul from 'consul';
import { RegistryUnavailableError, type InstanceMeta, type ServiceInstance } from '@trellis/core';
import { blockingRead, connectConsul, sendToConsul, type ConsulOptions } from './consul-http.js';
import type { QueryOptions, Registration, Registry, ServiceView } from './registry.js';
import { ServiceWatch, type WatchOptions } from './service-watch.js';

/** Where {@link ConsulRegistry} connects. */
export type ConsulRegistryOptions = ConsulOptions;

type ConsulCheckOptions = NonNullable<Parameters<Consul['agent']['check']['register']>[0]>;

/** The parts of a Consul health/service entry that Trellis reads. */
interface HealthEntry {
  Node?: { Address?: string };
  Checks?: Array<{ Status?: string }> | null;
  Service: {
    ID: string;
    Service: string;
    Address?: string;
    Port: number;
    Tags?: string[] | null;
    Meta?: Record<string, string> | null;
    Weights?: { Passing?: number } | null;
  };
}

// Meta keys with a meaning of their own; every other key is a label.
const reservedMeta = new Set(['version', 'zone', 'weight']);

/**
 * A {@link Registry} over Consul's HTTP API, through the official `consul` client. It uses only
 * what real Consul offers, so the same code talks to the Trellis registry server and to a
 * Consul agent: point `url` at either.
 *
 * Conventions: `meta.version` and `meta.zone` are Consul `Meta` entries of those names;
 * `meta.weight` is `Meta.weight` (the npm client does not send `Weights`; a `Weights.Passing`
 * set by another tool is read when `Meta.weight` is absent); instances register with a TTL
 * check that starts passing.
 *
 * @throws ConfigError from the constructor when `url` is not an http(s) URL.
 * @example
 * const registry = new ConsulRegistry({ url: 'http://127.0.0.1:8500' });
 * const users = await registry.list('users');
 */
export class ConsulRegistry implements Registry {
  readonly url: string;
  readonly #consul: Consul;
  readonly #timeoutMs: number;

  constructor(options: ConsulRegistryOptions = {}) {
    const { url, consul, timeoutMs } = connectConsul(options, 'registry');
    this.url = url;
    this.#consul = consul;
    this.#timeoutMs = timeoutMs;
  }

  async register(registration: Registration): Promise<void> {
    const { instance } = registration;
    await this.#send('register', instance.id, () =>
      this.#consul.agent.service.register({
        id: instance.id,
        name: instance.service,
        address: instance.address,
        port: instance.port,
        tags: [...instance.tags],
        meta: toConsulMeta(instance.meta),
        // The client's typings wrongly require `timeout` on every check; a TTL check has none.
        check: {
          name: `${instance.service} heartbeat`,
          ttl: `${registration.ttlMs}ms`,
          status: 'passing',
          deregistercriticalserviceafter: `${registration.deregisterAfterMs}ms`,
        } as ConsulCheckOptions,
        ...this.#requestOptions(),
      }),
    );
  }

  async heartbeat(instanceId: string): Promise<void> {
    await this.#send('heartbeat', instanceId, () =>
      this.#consul.agent.check.pass({ id: `service:${instanceId}`, ...this.#requestOptions() }),
    );
  }

  async deregister(instanceId: string): Promise<void> {
    await this.#send('deregister', instanceId, () =>
      this.#consul.agent.service.deregister({ id: instanceId, ...this.#requestOptions() }),
    );
  }

  async list(service: string): Promise<ServiceInstance[]> {
    return [...(await this.query(service, { passingOnly: true })).healthy];
  }

  /**
   * Reads `GET /v1/health/service/<service>` (with `?passing` when `passingOnly`), as a
   * blocking query when `options.index` is given; an instance is healthy when every check of it
   * passes, Consul's own rule for ?passing.
   */
  async query(service: string, options: QueryOptions = {}): Promise<ServiceView> {
    const { index, body: entries } = await blockingRead(options, this.#timeoutMs, (fields) =>
      this.#send('query', undefined, () =>
        this.#consul.health.service({
          service,
          ...(options.passingOnly === true ? { passing: true } : {}),
          ...fields,
        } as { service: string }),
      ),
    );
    if (!Array.isArray(entries)) {
      throw new RegistryUnavailableError(
        this.url,
        new Error('health/service answered with something other than a list'),
      );
    }
    const healthy: ServiceInstance[] = [];
    const unhealthy: ServiceInstance[] = [];
    for (const entry of entries as HealthEntry[]) {
      const passing = (entry.Checks ?? []).every((check) => check.Status === 'passing');
      (passing ? healthy : unhealthy).push(fromHealthEntry(entry));
    }
    return { index, healthy: healthy.sort(byId), unhealthy: unhealthy.sort(byId) };
  }

  watch(service: string, options: WatchOptions = {}): ServiceWatch {
    return new ServiceWatch(service, (query) => this.query(service, query), options);
  }

  async close(): Promise<void> {
    this.#consul.destroy();
  }

  // The npm client takes a per-request timeout, though its typings omit it.
  #requestOptions(): { timeout: number } {
    return { timeout: this.#timeoutMs };
  }

  #send<T>(operation: string, instanceId: string | undefined, request: () => Promise<T>): Promise<T> {
    return sendToConsul(this.url, operation, request, instanceId);
  }
}

function byId(x: ServiceInstance, y: ServiceInstance): number {
  return x.id < y.id ? -1 : x.id > y.id ? 1 : 0;
}

function toConsulMeta(meta: InstanceMeta): Record<string, string> {
  const out: Record<string, string> = { ...meta.labels, weight: String(meta.weight) };
  if (meta.version !== undefined) out['version'] = meta.version;
  if (meta.zone !== undefined) out['zone'] = meta.zone;
  return out;
}

function fromHealthEntry(entry: HealthEntry): ServiceInstance {
  const { Service: s } = entry;
  const raw = s.Meta ?? {};
  const labels: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) if (!reservedMeta.has(key)) labels[key] = value;
  // "0" is a weight (a draining instance); an absent or malformed one falls back to Consul's.
  const metaWeight = raw['weight'] !== undefined && /^\d+$/.test(raw['weight']) ? Number(raw['weight']) : undefined;
  const weight = metaWeight ?? s.Weights?.Passing ?? 1;
  const meta: InstanceMeta = {
    weight,
    labels,
    ...(raw['version'] === undefined ? {} : { version: raw['version'] }),
    ...(raw['zone'] === undefined ? {} : { zone: raw['zone'] }),
  };
  return {
    id: s.ID,
    service: s.Service,
    // Consul leaves Service.Address empty when the instance uses its node's address.
    address: s.Address || entry.Node?.Address || '127.0.0.1',
    port: s.Port,
    tags: s.Tags ?? [],
    meta,
  };
}
