import type { ServiceInstance } from '@trellis/core';

/** An instance of "users" that no test connects to (breakers are tested without a network). */
export const instance = (id: string): ServiceInstance => ({
  id,
  service: 'users',
  address: '127.0.0.1',
  port: 1,
  tags: [],
  meta: { weight: 1, labels: {} },
});
