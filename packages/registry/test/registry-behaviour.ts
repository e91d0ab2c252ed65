import { ManualClock, RegistryRejectedError, RegistryUnavailableError } from '@trellis/core';
import { SelfRegistration, type Registration, type Registry, type WatchEvent } from '@trellis/registry';
import { eventLog, instance, nextEvent } from './fixtures.js';

/** One registry under test, on a backend of its own, and what the shared behaviours need of it. */
export interface RegistryUnderTest {
  readonly registry: Registry;
  /** The TTL of the registration whose TTL a test lets pass: short where the backend's time is real. */
  readonly expiringTtlMs: number;
  /** Lets a registration of `expiringTtlMs` pass its TTL without a heartbeat (a clock advanced, or the backend's own expiry awaited). */
  letTtlPass(service: string): Promise<void>;
  /** A registry of the same kind pointed at an address where nothing listens, and that address. */
  unreachable(): { registry: Registry; address: string };
  close(): Promise<void>;
}

/**
 * What every {@link Registry} promises, whatever it runs on: ConsulRegistry (against the
 * registry server) and EtcdRegistry (against a real etcd) run these same tests.
 */
export function registryBehaviour(start: () => Promise<RegistryUnderTest>): void {
  let under: RegistryUnderTest;
  let registry: Registry;
  // Long enough that no registration a test does not mean to expire ever does, on a real clock.
  const registration = (id: string, service = 'users', ttlMs = 60_000): Registration => ({
    instance: instance(id, service),
    ttlMs,
    deregisterAfterMs: 60_000,
  });

  beforeEach(async () => {
    under = await start();
    registry = under.registry;
  });
  afterEach(async () => {
    await under.close();
  });

  it('registers an instance that is listed at once, with its metadata', async () => {
    const users = instance('users-1', 'users', 4001);
    await registry.register({
      instance: {
        ...users,
        tags: ['http', 'v1'],
        meta: { version: '1.2.0', zone: 'a', weight: 3, labels: { team: 'id' } },
      },
      ttlMs: 60_000,
      deregisterAfterMs: 60_000,
    });
    expect(await registry.list('users')).toEqual([
      {
        id: 'users-1',
        service: 'users',
        address: '127.0.0.1',
        port: 4001,
        tags: ['http', 'v1'],
        meta: { version: '1.2.0', zone: 'a', weight: 3, labels: { team: 'id' } },
      },
    ]);
  });

  it('lists only the named service, sorted by id', async () => {
    await registry.register(registration('users-b'));
    await registry.register(registration('users-a'));
    await registry.register(registration('mail-1', 'mail'));
    expect((await registry.list('users')).map((i) => i.id)).toEqual(['users-a', 'users-b']);
    expect(await registry.list('chat')).toEqual([]);
  });

  it('replaces an instance registered again under its id', async () => {
    await registry.register(registration('users-1'));
    await registry.register({ ...registration('users-1'), instance: { ...instance('users-1'), port: 4999 } });
    expect((await registry.list('users')).map((i) => [i.id, i.port])).toEqual([['users-1', 4999]]);
  });

  it('keeps a weight of 0 (a draining instance), instead of reading it as 1', async () => {
    const users = instance('users-1', 'users', 4001);
    await registry.register({ ...registration('users-1'), instance: { ...users, meta: { ...users.meta, weight: 0 } } });
    expect((await registry.list('users'))[0]?.meta.weight).toBe(0);
  });

  it('deregisters, and answers 404 for ids it does not know', async () => {
    await registry.register(registration('users-1'));
    await registry.deregister('users-1');
    expect(await registry.list('users')).toEqual([]);
    for (const attempt of [registry.heartbeat('users-1'), registry.deregister('users-1')]) {
      const error: unknown = await attempt.catch((e: unknown) => e);
      expect(RegistryRejectedError.is(error) && error.status).toBe(404);
    }
  });

  it('stops listing an instance whose TTL passes without a heartbeat; its SelfRegistration brings it back', async () => {
    const clock = new ManualClock();
    const self = new SelfRegistration(registry, registration('users-1', 'users', under.expiringTtlMs), { clock });
    await self.start();
    try {
      await under.letTtlPass('users');
      expect(await registry.list('users')).toEqual([]);
      // The next heartbeat is accepted (Consul's check passes again) or refused as unknown
      // (etcd's lease is gone, and the instance registers again): listed either way.
      await clock.advanceAsync(Math.ceil(under.expiringTtlMs / 3));
      for (let i = 0; i < 100 && (await registry.list('users')).length === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect((await registry.list('users')).map((i) => i.id)).toEqual(['users-1']);
    } finally {
      await self.close();
    }
  });

  it('answers a read with an index, and holds a read at that index until the service changes', async () => {
    const first = await registry.query('users');
    expect(first).toMatchObject({ healthy: [], unhealthy: [] });
    expect(first.index).toBeGreaterThan(0);
    const held = registry.query('users', { index: first.index, waitMs: 30_000 });
    await registry.register(registration('users-1'));
    const answer = await held;
    expect(answer.healthy.map((i) => i.id)).toEqual(['users-1']);
    expect(answer.index).toBeGreaterThan(first.index);
  });

  it('abandons a held read when its signal aborts', async () => {
    const { index } = await registry.query('users');
    const abort = new AbortController();
    const held = registry.query('users', { index, waitMs: 30_000, signal: abort.signal });
    abort.abort();
    await expect(held).rejects.toThrow();
  });

  it('watches a service: an instance registering, changing and leaving arrive as events', async () => {
    const watch = registry.watch('users', { floorMs: 0 });
    const seen = eventLog(watch);
    const next = (type: WatchEvent['type']): Promise<void> => nextEvent(watch, type);
    try {
      await watch.ready();
      const added = next('instance-added');
      await registry.register(registration('users-1'));
      await added;
      const changed = next('instance-changed');
      await registry.register({ ...registration('users-1'), instance: { ...instance('users-1'), port: 4999 } });
      await changed;
      const removed = next('instance-removed');
      await registry.deregister('users-1');
      await removed;
      expect(seen).toEqual(['instance-added users-1', 'instance-changed users-1', 'instance-removed users-1']);
    } finally {
      await watch.close();
    }
  });

  it('reports an unreachable registry as RegistryUnavailableError', async () => {
    const { registry: unreachable, address } = under.unreachable();
    try {
      const error: unknown = await unreachable.list('users').catch((e: unknown) => e);
      expect(RegistryUnavailableError.is(error)).toBe(true);
      expect((error as Error).message).toContain(`registry at ${address} is unreachable`);
    } finally {
      await unreachable.close();
    }
  });
}
