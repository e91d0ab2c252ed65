import type { ServiceInstance } from './service-instance.js';

/**
 * Where a client finds the instances of a service: the registry package's `Discovery` cache is
 * one; a fixed list in a test is another. The client depends on this, not on the registry.
 *
 * @example
 * const fixed: InstanceSource = { instances: async () => [a, b] };
 */
export interface InstanceSource {
  /**
   * The instances of `service` that may be called now.
   * @throws RegistryUnavailableError when the service was never found and the registry is down.
   */
  instances(service: string): Promise<readonly ServiceInstance[]>;
}
