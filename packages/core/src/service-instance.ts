/**
 * What every instance advertises besides its address. `version`, `zone` and `weight` are the
 * keys that routing and load balancing read; any other key is carried as given.
 *
 * In Consul terms `version` and `zone` are `Meta` entries and `weight` is `Weights.Passing`.
 */
export interface InstanceMeta {
  /** Release of the code this instance runs, e.g. "1.4.0" or "v2". */
  readonly version?: string;
  /** Failure domain the instance runs in, e.g. "eu-west-1a"; zone-aware balancing prefers the caller's. */
  readonly zone?: string;
  /** Relative share of traffic for weighted strategies (not a fraction); an integer, 1 by default, 0 to drain. */
  readonly weight: number;
  /** Any other metadata, as string pairs. */
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * One running, addressable copy of a service.
 *
 * @example
 * const users1: ServiceInstance = {
 *   id: 'users-1', service: 'users', address: '127.0.0.1', port: 4001,
 *   tags: ['http'], meta: { version: '1.0.0', weight: 1, labels: {} },
 * };
 */
export interface ServiceInstance {
  /** Unique among all instances in the registry; stable for the life of the process. */
  readonly id: string;
  /** The logical name callers use, e.g. "users". */
  readonly service: string;
  /** Host name or IP address callers connect to. */
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: InstanceMeta;
}

/** The HTTP origin of an instance, e.g. `http://127.0.0.1:4001` (IPv6 addresses bracketed). */
export function instanceOrigin(instance: Pick<ServiceInstance, 'address' | 'port'>): string {
  const host = instance.address.includes(':') ? `[${instance.address}]` : instance.address;
  return `http://${host}:${instance.port}`;
}
