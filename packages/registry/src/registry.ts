import type { Closeable, ServiceInstance } from '@trellis/core';

/** What an instance sends to announce itself. */
export interface Registration {
  readonly instance: ServiceInstance;
  /**
   * The instance is reported unhealthy when no heartbeat arrives within this many milliseconds
   * (a TTL check). Heartbeat well inside it: {@link SelfRegistration} beats every third of it.
   */
  readonly ttlMs: number;
  /**
   * The registry removes the instance once it has been unhealthy this long, so that crashed
   * processes do not stay listed forever (Consul's DeregisterCriticalServiceAfter).
   */
  readonly deregisterAfterMs: number;
}

/**
 * Where services announce themselves and find each other.
 *
 * Implementations: {@link MemoryRegistry} (one process), {@link ConsulRegistry} (the Trellis
 * registry server or a Consul agent). Methods reject with `RegistryUnavailableError` when the
 * registry cannot be reached and `RegistryRejectedError` when it refuses the request; an unknown
 * instance id is refused with status 404.
 */
export interface Registry extends Closeable {
  /** Adds the instance, or replaces it when its id is already registered. It is healthy at once. */
  register(registration: Registration): Promise<void>;
  /** Tells the registry the instance is alive, resetting its TTL. */
  heartbeat(instanceId: string): Promise<void>;
  /** Removes the instance. */
  deregister(instanceId: string): Promise<void>;
  /** The instances of `service` that are registered and healthy, in a stable order. */
  list(service: string): Promise<ServiceInstance[]>;
}
