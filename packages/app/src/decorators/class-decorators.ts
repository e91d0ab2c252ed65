import { injectable } from 'inversify';
import { ConfigError, isServiceName } from '@trellis/core';
import { ownClassMetadata } from './metadata.js';

/**
 * Marks a class as a controller whose decorated methods serve routes under `prefix`. The class is
 * made injectable: the app's container builds it, with its constructor's dependencies.
 *
 * @example
 * import { z } from 'zod';
 *
 * @Controller('/users')
 * class UsersController {
 *   @Get('/:id')
 *   one(@Param('id', z.string().regex(/^\d+$/)) id: string): Promise<User> { return findUser(id); }
 * }
 */
export function Controller(prefix = ''): ClassDecorator {
  if (prefix !== '' && !prefix.startsWith('/')) {
    throw new ConfigError('Controller.prefix', `must start with "/", got ${JSON.stringify(prefix)}`);
  }
  return (target) => {
    ownClassMetadata(target).controller = { prefix: prefix.replace(/\/+$/, '') };
    injectable()(target);
  };
}

/**
 * Marks a class as a declarative client of `service` (OpenFeign's `@FeignClient`): each decorated
 * method becomes a governed call to the service, through the same stack as a `ServiceClient`.
 * The app's container makes its instances; their method bodies never run.
 *
 * @example
 * @Client('users')
 * class UsersClient {
 *   @Get('/users/:id')
 *   user(@Param('id') id: string): Promise<User> { return remoteCall(id); }
 * }
 */
export function Client(service: string): ClassDecorator {
  if (!isServiceName(service)) {
    throw new ConfigError('Client.service', `must be a service name, got ${JSON.stringify(service)}`);
  }
  return (target) => {
    ownClassMetadata(target).client = { service };
    injectable()(target);
  };
}
