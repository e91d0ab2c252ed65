export { ConsulRegistry } from './consul-registry.js';
export type { ConsulRegistryOptions } from './consul-registry.js';
export { Discovery } from './discovery.js';
export type { DiscoveryOptions, InstancesChanged, RefreshFailed } from './discovery.js';
export { MemoryRegistry } from './memory-registry.js';
export type { Registration, Registry } from './registry.js';
export { SelfRegistration } from './self-registration.js';
export type { SelfRegistrationOptions } from './self-registration.js';
