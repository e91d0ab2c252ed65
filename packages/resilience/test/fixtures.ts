import { ConfigError, type Call, type ServiceInstance } from '@trellis/core';

/** The field a ConfigError thrown by `make` names, or undefined when it throws none. */
export function configField(make: () => unknown): string | undefined {
  try {
    make();
  } catch (error) {
    return ConfigError.is(error) ? error.field : undefined;
  }
  return undefined;
}

/** Three instances of "users" that no test connects to (filters are tested without a network). */
export const instances = ['users-1', 'users-2', 'users-3'].map((id): ServiceInstance => ({
  id,
  service: 'users',
  address: '127.0.0.1',
  port: 1,
  tags: [],
  meta: { weight: 1, labels: {} },
}));

/** An idempotent call to "users". */
export const get: Call = { service: 'users', method: 'GET', path: '/users/1', headers: {} };

/** An instance of "users" that no test connects to (breakers are tested without a network). */
export const instance = (id: string): ServiceInstance => ({
  id,
  service: 'users',
  address: '127.0.0.1',
  port: 1,
  tags: [],
  meta: { weight: 1, labels: {} },
});
