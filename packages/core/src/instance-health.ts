import type { ServiceInstance } from './service-instance.js';

/**
 * What load balancing asks before picking an instance: whether something (an open
 * per-instance breaker, outlier detection) has taken it out of rotation for now. Implemented by
 * the breaker package, read by the load balancer; neither imports the other.
 */
export interface InstanceHealth {
  /** True while `instance` should receive no calls; load balancing skips it unless all are ejected. */
  isEjected(instance: ServiceInstance): boolean;
}
