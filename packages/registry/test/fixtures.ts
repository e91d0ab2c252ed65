import type { ServiceInstance } from '@trellis/core';
import type { Registration } from '@trellis/registry';

export function instance(id: string, service = 'users', port = 4000): ServiceInstance {
  return { id, service, address: '127.0.0.1', port, tags: ['http'], meta: { version: '1.0.0', weight: 1, labels: {} } };
}

export function registration(id: string, service = 'users'): Registration {
  return { instance: instance(id, service), ttlMs: 3_000, deregisterAfterMs: 60_000 };
}
