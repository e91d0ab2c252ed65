import {
  ClosedError,
  RegistryRejectedError,
  systemClock,
  type Clock,
  type ServiceInstance,
  type Timer,
} from '@trellis/core';
import type { Registration, Registry } from './registry.js';

interface Entry {
  readonly registration: Registration;
  healthy: boolean;
  ttl: Timer;
  reaper: Timer | undefined;
}

/**
 * A registry that lives in one process: for tests and for services that run together. It keeps
 * the same rules as the registry server (TTL expiry, removal of long-unhealthy instances,
 * 404 for unknown ids), on an injected clock.
 *
 * @example
 * const registry = new MemoryRegistry({ clock: new ManualClock() });
 * await registry.register({ instance, ttlMs: 10_000, deregisterAfterMs: 60_000 });
 */
export class MemoryRegistry implements Registry {
  readonly #clock: Clock;
  readonly #entries = new Map<string, Entry>();
  #closed = false;

  constructor(options: { clock?: Clock } = {}) {
    this.#clock = options.clock ?? systemClock;
  }

  async register(registration: Registration): Promise<void> {
    this.#assertOpen();
    this.#remove(registration.instance.id);
    const entry: Entry = { registration, healthy: true, ttl: this.#armTtl(registration), reaper: undefined };
    this.#entries.set(registration.instance.id, entry);
  }

  async heartbeat(instanceId: string): Promise<void> {
    this.#assertOpen();
    const entry = this.#entries.get(instanceId);
    if (entry === undefined) throw unknownInstance('heartbeat', instanceId);
    entry.ttl.cancel();
    entry.reaper?.cancel();
    entry.reaper = undefined;
    entry.healthy = true;
    entry.ttl = this.#armTtl(entry.registration);
  }

  async deregister(instanceId: string): Promise<void> {
    this.#assertOpen();
    if (!this.#remove(instanceId)) throw unknownInstance('deregister', instanceId);
  }

  async list(service: string): Promise<ServiceInstance[]> {
    this.#assertOpen();
    const found: ServiceInstance[] = [];
    for (const entry of this.#entries.values()) {
      if (entry.healthy && entry.registration.instance.service === service) found.push(entry.registration.instance);
    }
    return found.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const id of [...this.#entries.keys()]) this.#remove(id);
  }

  #armTtl(registration: Registration): Timer {
    return this.#clock.setTimer(registration.ttlMs, () => {
      const entry = this.#entries.get(registration.instance.id);
      if (entry === undefined) return;
      entry.healthy = false;
      entry.reaper = this.#clock.setTimer(registration.deregisterAfterMs, () => this.#remove(registration.instance.id));
    });
  }

  #remove(instanceId: string): boolean {
    const entry = this.#entries.get(instanceId);
    if (entry === undefined) return false;
    entry.ttl.cancel();
    entry.reaper?.cancel();
    this.#entries.delete(instanceId);
    return true;
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('MemoryRegistry');
  }
}

function unknownInstance(operation: string, instanceId: string): RegistryRejectedError {
  return new RegistryRejectedError(operation, 404, `unknown instance id "${instanceId}"`, { instance: instanceId });
}
