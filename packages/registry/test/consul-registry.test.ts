import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, type ClientRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError, ManualClock, RegistryUnavailableError } from '@trellis/core';
import { ConsulRegistry, SelfRegistration, type WatchEvent } from '@trellis/registry';
import { RegistryServer } from '@trellis/registry-server';
import { eventLog, instance, nextEvent, registration } from './fixtures.js';

// ConsulRegistry against the real registry server over HTTP, through the official consul client:
// what only Consul has (checks that turn critical and pass again, Weights, gzip answers). What
// every registry does is in every-registry-behaves-alike.test.ts.
describe('ConsulRegistry', () => {
  let clock: ManualClock;
  let server: RegistryServer;
  let url: string;
  let registry: ConsulRegistry;

  beforeEach(async () => {
    clock = new ManualClock();
    server = new RegistryServer({ clock, logLevel: 'silent' });
    ({ url } = await server.listen({ port: 0 }));
    registry = new ConsulRegistry({ url });
  });
  afterEach(async () => {
    await registry.close();
    await server.close();
  });

  it('drops an instance whose TTL passes without a heartbeat, and lists it again after one', async () => {
    await registry.register(registration('users-1'));
    clock.advance(3_000);
    expect(await registry.list('users')).toEqual([]);
    await registry.heartbeat('users-1');
    expect(await registry.list('users')).toHaveLength(1);
  });

  it('reads Weights.Passing when another tool registered the weight that way', async () => {
    const response = await fetch(`${url}/v1/agent/service/register`, {
      method: 'PUT',
      body: JSON.stringify({ Name: 'users', ID: 'users-x', Port: 4002, Weights: { Passing: 5, Warning: 1 } }),
    });
    expect(response.status).toBe(200);
    const [listed] = await registry.list('users');
    expect(listed?.meta.weight).toBe(5);
    // A service registered without an address is reached at its node's address, as in Consul.
    expect(listed?.address).toBe('127.0.0.1');
  });

  it('registers again by itself after the registry restarts empty', async () => {
    const self = new SelfRegistration(registry, registration('users-1'), { clock });
    const reregistered = new Promise<void>((resolve) => self.onReregistered(() => resolve()));
    await self.start();
    const { port } = new URL(url);
    await server.close();
    server = new RegistryServer({ clock, logLevel: 'silent' });
    await server.listen({ port: Number(port) });
    expect(await registry.list('users')).toEqual([]);
    await clock.advanceAsync(1_000);
    await reregistered;
    expect((await registry.list('users')).map((i) => i.id)).toEqual(['users-1']);
    await self.close();
  });

  it('reads a service with its index, healthy and unhealthy instances apart, or healthy only', async () => {
    await registry.register(registration('users-1'));
    await registry.register({ ...registration('users-2'), ttlMs: 600_000 });
    clock.advance(3_000); // users-1's TTL runs out
    const view = await registry.query('users');
    expect(view.healthy.map((i) => i.id)).toEqual(['users-2']);
    expect(view.unhealthy.map((i) => i.id)).toEqual(['users-1']);
    expect(view.index).toBeGreaterThan(1);
    expect((await registry.query('users', { passingOnly: true })).unhealthy).toEqual([]);
  });

  it('watches a service: an instance registering, expiring and leaving arrive as events', async () => {
    const watch = registry.watch('users', { floorMs: 0 });
    const seen = eventLog(watch);
    const next = (type: WatchEvent['type']): Promise<void> => nextEvent(watch, type);
    try {
      await watch.ready();
      await until(() => server.heldQueries === 1);
      const added = next('instance-added');
      await registry.register(registration('users-1'));
      await added;
      await until(() => server.heldQueries === 1);
      const expired = next('instance-removed');
      clock.advance(3_000);
      await expired;
      expect(watch.view?.unhealthy.map((i) => i.id)).toEqual(['users-1']);
      await until(() => server.heldQueries === 1);
      const back = next('instance-added');
      await registry.heartbeat('users-1');
      await back;
      expect(seen).toEqual(['instance-added users-1', 'instance-removed users-1', 'instance-added users-1']);
    } finally {
      await watch.close();
    }
  });

  it('reads its blocking queries gzip-encoded, and its watcher still sees the instances, before and after a change', async () => {
    // Node publishes every HTTP response it receives here, as it came off the socket: before
    // anything above the http module (the npm client, our inflating) touches it.
    const blockingAnswers: Array<string | undefined> = [];
    const onResponse = (message: unknown): void => {
      const { request, response } = message as { request: ClientRequest; response: IncomingMessage };
      if (request.path.startsWith('/v1/health/service/users?') && request.path.includes('index=')) {
        blockingAnswers.push(response.headers['content-encoding']);
      }
    };
    subscribe('http.client.response.finish', onResponse);
    await registry.register(registration('users-1'));
    const watch = registry.watch('users', { floorMs: 0 });
    try {
      await watch.ready();
      expect(watch.view?.healthy.map((i) => i.id)).toEqual(['users-1']);
      await until(() => server.heldQueries === 1);
      const added = new Promise<void>((resolve) => {
        const listener = watch.onEvent((e) => {
          if (e.type !== 'instance-added') return;
          listener.dispose();
          resolve();
        });
      });
      await registry.register(registration('users-2'));
      await added;
      expect(watch.view?.healthy.map((i) => i.id)).toEqual(['users-1', 'users-2']);
      expect(watch.view?.healthy[1]).toEqual(instance('users-2'));
    } finally {
      await watch.close();
      unsubscribe('http.client.response.finish', onResponse);
    }
    // The answer that woke the watcher came compressed, and so did every other blocking one.
    expect(blockingAnswers.length).toBeGreaterThanOrEqual(1);
    expect(new Set(blockingAnswers)).toEqual(new Set(['gzip']));
  });

  it('fails a query whose answer says gzip but is not, as RegistryUnavailableError, instead of waiting out its timeout', async () => {
    const liar = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      response.end('[]');
    });
    await new Promise<void>((resolve) => liar.listen(0, '127.0.0.1', resolve));
    const { port } = liar.address() as AddressInfo;
    const lied = new ConsulRegistry({ url: `http://127.0.0.1:${port}`, timeoutMs: 60_000 });
    try {
      const error: unknown = await lied.list('users').catch((e: unknown) => e);
      expect(RegistryUnavailableError.is(error)).toBe(true);
      expect((error as Error).message).toContain('incorrect header check');
    } finally {
      await lied.close();
      await new Promise((resolve) => liar.close(resolve));
    }
  });

  it('refuses a malformed address or timeout with an error naming the field', () => {
    for (const [options, field] of [
      [{ url: 'not a url' }, 'registry.url'],
      [{ url: 'ftp://127.0.0.1:8500' }, 'registry.url'],
      [{ timeoutMs: 0 }, 'registry.timeoutMs'],
    ] as const) {
      let error: unknown;
      try {
        new ConsulRegistry(options);
      } catch (e) {
        error = e;
      }
      expect(ConfigError.is(error) && error.field).toBe(field);
    }
  });
});

/** Waits for a condition the server reaches by itself, a turn of the event loop at a time (bounded). */
async function until(condition: () => boolean): Promise<void> {
  for (let turns = 0; !condition(); turns++) {
    if (turns > 10_000) throw new Error('condition not reached');
    await new Promise((resolve) => setImmediate(resolve));
  }
}
