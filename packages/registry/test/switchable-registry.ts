import { RegistryUnavailableError, type Clock, type ServiceInstance } from '@trellis/core';
import {
  MemoryRegistry,
  ServiceWatch,
  type QueryOptions,
  type Registration,
  type Registry,
  type ServiceView,
  type WatchOptions,
} from '@trellis/registry';

/**
 * A real MemoryRegistry behind a switch, the way a network partition and a restart look to a
 * caller: `down()` fails every request and drops the queries it holds, `restart()` puts a new,
 * empty registry behind the same address (its indexes start over).
 */
export class SwitchableRegistry implements Registry {
  queries = 0;
  #inner: MemoryRegistry;
  #up = true;
  readonly #held = new Set<AbortController>();
  readonly #clock: Clock;

  constructor(clock: Clock) {
    this.#clock = clock;
    this.#inner = new MemoryRegistry({ clock });
  }

  get inner(): MemoryRegistry {
    return this.#inner;
  }

  down(): void {
    this.#up = false;
    for (const held of this.#held) held.abort();
  }

  up(): void {
    this.#up = true;
  }

  async restart(): Promise<void> {
    this.down();
    await this.#inner.close();
    this.#inner = new MemoryRegistry({ clock: this.#clock });
    this.up();
  }

  register(r: Registration): Promise<void> {
    return this.#call(() => this.#inner.register(r));
  }
  heartbeat(id: string): Promise<void> {
    return this.#call(() => this.#inner.heartbeat(id));
  }
  deregister(id: string): Promise<void> {
    return this.#call(() => this.#inner.deregister(id));
  }
  async list(service: string): Promise<ServiceInstance[]> {
    return [...(await this.query(service)).healthy];
  }
  async query(service: string, options: QueryOptions = {}): Promise<ServiceView> {
    this.queries++;
    const held = new AbortController();
    const abort = (): void => held.abort();
    options.signal?.addEventListener('abort', abort, { once: true });
    this.#held.add(held);
    try {
      return await this.#call(() => this.#inner.query(service, { ...options, signal: held.signal }));
    } catch (error) {
      if (held.signal.aborted && options.signal?.aborted !== true) throw unavailable();
      throw error;
    } finally {
      this.#held.delete(held);
      options.signal?.removeEventListener('abort', abort);
    }
  }
  watch(service: string, options: WatchOptions = {}): ServiceWatch {
    return new ServiceWatch(service, (q) => this.query(service, q), { clock: this.#clock, ...options });
  }
  close(): Promise<void> {
    return this.#inner.close();
  }

  async #call<T>(request: () => Promise<T>): Promise<T> {
    if (!this.#up) throw unavailable();
    return request();
  }
}

function unavailable(): RegistryUnavailableError {
  return new RegistryUnavailableError('switchable', new Error('connect ECONNREFUSED'));
}
