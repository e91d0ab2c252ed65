import { z } from 'zod';
import { ConfigError } from '@trellis/core';
import {
  Body,
  Bulkhead,
  classMetadata,
  Client,
  Controller,
  Get,
  Header,
  Param,
  Post,
  Query,
  RateLimit,
  Retry,
  Signal,
  Timeout,
} from '@trellis/app';

describe('decorators record metadata and nothing else', () => {
  it('records a controller prefix, verbs, parameters in order with their schemas, and policies', () => {
    const id = z.string().regex(/^\d+$/);
    @Controller('/users/')
    @Timeout(2_000)
    class UsersController {
      @Get('/:id')
      @RateLimit({ ratePerSecond: 5 })
      one(@Param('id', id) userId: string, @Query() query: unknown, @Signal() signal: AbortSignal): unknown {
        return { userId, query, signal };
      }

      @Post()
      @Bulkhead({ maxConcurrent: 2 })
      add(@Header('X-Request-Id') requestId: string, @Body() body: unknown): unknown {
        return { requestId, body };
      }
    }
    const metadata = classMetadata(UsersController);
    expect(metadata?.controller).toEqual({ prefix: '/users' });
    expect(metadata?.client).toBeUndefined();
    expect(metadata?.defaults.timeoutMs).toBe(2_000);
    const one = metadata?.methods.get('one');
    expect(one?.route).toEqual({ verb: 'GET', path: '/:id' });
    expect(one?.rateLimit).toEqual({ ratePerSecond: 5 });
    expect(one?.parameters.map((p) => [p.index, p.source, p.name])).toEqual([
      [0, 'param', 'id'],
      [1, 'query', undefined],
      [2, 'signal', undefined],
    ]);
    expect(one?.parameters[0]?.schema).toBe(id);
    const add = metadata?.methods.get('add');
    expect(add?.route).toEqual({ verb: 'POST', path: '' });
    expect(add?.bulkhead).toEqual({ maxConcurrent: 2 });
    expect(add?.parameters.map((p) => [p.source, p.name])).toEqual([
      ['header', 'x-request-id'],
      ['body', undefined],
    ]);
    // The decorated method itself is untouched.
    expect(new UsersController().add('r', 1)).toEqual({ requestId: 'r', body: 1 });
  });

  it('records the service of a declarative client and its per-method policies', () => {
    @Client('users')
    class UsersClient {
      @Get('/users/:id')
      @Retry(false)
      user(@Param('id') id: string): Promise<unknown> {
        return Promise.resolve(id);
      }
    }
    const metadata = classMetadata(UsersClient);
    expect(metadata?.client).toEqual({ service: 'users' });
    expect(metadata?.methods.get('user')?.retry).toBe(false);
  });

  it('refuses malformed arguments with a ConfigError naming them', () => {
    expect(() => Controller('users')).toThrow(ConfigError);
    expect(() => Get('users/:id')).toThrow(/Get\.path.*must start with "\/"/);
    expect(() => Timeout(0)).toThrow(/Timeout\.ms/);
    expect(() => Client('no such name')).toThrow(/Client\.service/);
    expect(() => {
      class Twice {
        @Get('/a')
        @Post('/a')
        both(): void {}
      }
      return Twice;
    }).toThrow(/both.*two verbs/);
  });
});
