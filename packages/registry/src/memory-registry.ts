import {
  ClosedError,
  RegistryRejectedError,
  systemClock,
  type Clock,
  type ServiceInstance,
  type Timer,
} from '@trellis/core';
import type { QueryOptions, Registration, Registry, ServiceView } from './registry.js';
import { ServiceWatch, type WatchOptions } from './service-watch.js';

interface Entry {
  readonly registration: Registration;
  healthy: boolean;
  ttl: Timer;
  reaper: Timer | undefined;
}

/**
 * A registry that lives in one process: for tests and for services that run together. It keeps
 * the same rules as the registry server (TTL expiry, removal of long-unhealthy instances,
 * 404 for unknown ids, a per-service index for blocking queries), on an injected clock.
 *
 * @example
 * const registry = new MemoryRegistry({ clock: new ManualClock() });
 * await registry.register({ instance, ttlMs: 10_000, deregisterAfterMs: 60_000 });
 */
export class MemoryRegistry implements Registry {
  readonly #clock: Clock;
  readonly #entries = new Map<string, Entry>();
  // The index of each service's last change, from one counter, as Consul's raft index.
  readonly #indexes = new Map<string, number>();
  readonly #waiters = new Map<string, Set<() => void>>();
  #index = 1;
  #closed = false;

  constructor(options: { clock?: Clock } = {}) {
    this.#clock = options.clock ?? systemClock;
  }

  async register(registration: Registration): Promise<void> {
    this.#assertOpen();
    this.#remove(registration.instance.id);
    const entry: Entry = { registration, healthy: true, ttl: this.#armTtl(registration), reaper: undefined };
    this.#entries.set(registration.instance.id, entry);
    this.#changed(registration.instance.service);
  }

  async heartbeat(instanceId: string): Promise<void> {
    this.#assertOpen();
    const entry = this.#entries.get(instanceId);
    if (entry === undefined) throw unknownInstance('heartbeat', instanceId);
    entry.ttl.cancel();
    entry.reaper?.cancel();
    entry.reaper = undefined;
    entry.ttl = this.#armTtl(entry.registration);
    if (!entry.healthy) {
      entry.healthy = true;
      this.#changed(entry.registration.instance.service);
    }
  }

  async deregister(instanceId: string): Promise<void> {
    this.#assertOpen();
    if (!this.#remove(instanceId)) throw unknownInstance('deregister', instanceId);
  }

  async list(service: string): Promise<ServiceInstance[]> {
    return [...(await this.query(service)).healthy];
  }

  /**
   * @throws ClosedError when the registry is closed, also while a query is held.
   * @throws (rejects with) the signal's reason when `options.signal` aborts.
   */
  async query(service: string, options: QueryOptions = {}): Promise<ServiceView> {
    this.#assertOpen();
    const index = options.index ?? 0;
    if (index > 0 && index >= this.#indexOf(service)) await this.#waitForChange(service, options);
    return this.#view(service, options.passingOnly ?? false);
  }

  watch(service: string, options: WatchOptions = {}): ServiceWatch {
    this.#assertOpen();
    return new ServiceWatch(service, (query) => this.query(service, query), { clock: this.#clock, ...options });
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const id of [...this.#entries.keys()]) this.#remove(id);
    for (const waiters of this.#waiters.values()) for (const wake of waiters) wake();
  }

  #view(service: string, passingOnly: boolean): ServiceView {
    this.#assertOpen();
    const healthy: ServiceInstance[] = [];
    const unhealthy: ServiceInstance[] = [];
    for (const { registration, healthy: ok } of this.#entries.values()) {
      if (registration.instance.service !== service) continue;
      if (ok) healthy.push(registration.instance);
      else if (!passingOnly) unhealthy.push(registration.instance);
    }
    return { index: this.#indexOf(service), healthy: healthy.sort(byId), unhealthy: unhealthy.sort(byId) };
  }

  #indexOf(service: string): number {
    return this.#indexes.get(service) ?? 1;
  }

  #waitForChange(service: string, options: QueryOptions): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiters = this.#waiters.get(service) ?? new Set<() => void>();
      this.#waiters.set(service, waiters);
      const done = (): void => {
        waiters.delete(wake);
        timer.cancel();
        options.signal?.removeEventListener('abort', abort);
      };
      const wake = (): void => {
        done();
        resolve();
      };
      const abort = (): void => {
        done();
        reject(options.signal?.reason);
      };
      waiters.add(wake);
      const timer = this.#clock.setTimer(options.waitMs ?? 60_000, wake);
      if (options.signal?.aborted) abort();
      else options.signal?.addEventListener('abort', abort, { once: true });
    });
  }

  #changed(service: string): void {
    this.#indexes.set(service, ++this.#index);
    for (const wake of [...(this.#waiters.get(service) ?? [])]) wake();
  }

  #armTtl(registration: Registration): Timer {
    return this.#clock.setTimer(registration.ttlMs, () => {
      const entry = this.#entries.get(registration.instance.id);
      if (entry === undefined) return;
      entry.healthy = false;
      this.#changed(registration.instance.service);
      entry.reaper = this.#clock.setTimer(registration.deregisterAfterMs, () => this.#remove(registration.instance.id));
    });
  }

  #remove(instanceId: string): boolean {
    const entry = this.#entries.get(instanceId);
    if (entry === undefined) return false;
    entry.ttl.cancel();
    entry.reaper?.cancel();
    this.#entries.delete(instanceId);
    this.#changed(entry.registration.instance.service);
    return true;
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('MemoryRegistry');
  }
}

function byId(x: ServiceInstance, y: ServiceInstance): number {
  return x.id < y.id ? -1 : x.id > y.id ? 1 : 0;
}

function unknownInstance(operation: string, instanceId: string): RegistryRejectedError {
  return new RegistryRejectedError(operation, 404, `unknown instance id "${instanceId}"`, { instance: instanceId });
}
