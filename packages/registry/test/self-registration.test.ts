import {
  ConfigError,
  ManualClock,
  RegistryRejectedError,
  RegistryUnavailableError,
  type ServiceInstance,
} from '@trellis/core';
import {
  ConsulRegistry,
  MemoryRegistry,
  SelfRegistration,
  type QueryOptions,
  type Registration,
  type Registry,
  type ServiceView,
  type ServiceWatch,
  type WatchOptions,
} from '@trellis/registry';
import { registration } from './fixtures.js';

/** Counts heartbeats and can refuse them, as an unreachable registry does. */
class CountingRegistry implements Registry {
  heartbeats = 0;
  registrations = 0;
  down = false;
  /** Answers heartbeats as an older Consul answers one for a check it does not know. */
  oldConsul = false;
  /** Registrations fail as they do when the registry cannot be reached, or as a refusal. */
  registerAnswer: 'ok' | 'unreachable' | 'refused' = 'ok';
  constructor(readonly inner: MemoryRegistry) {}
  async register(r: Registration): Promise<void> {
    this.registrations++;
    if (this.registerAnswer === 'unreachable') throw new RegistryUnavailableError('counting', 'connection refused');
    if (this.registerAnswer === 'refused') throw new RegistryRejectedError('register', 403, 'Permission denied');
    return this.inner.register(r);
  }
  async heartbeat(id: string): Promise<void> {
    this.heartbeats++;
    if (this.down) throw new RegistryUnavailableError('counting', 'down');
    if (this.oldConsul && (await this.inner.list('users')).every((i) => i.id !== id)) {
      throw new RegistryRejectedError('heartbeat', 500, `CheckID "service:${id}" does not have associated TTL`);
    }
    return this.inner.heartbeat(id);
  }
  deregister(id: string): Promise<void> {
    return this.inner.deregister(id);
  }
  list(service: string): Promise<ServiceInstance[]> {
    return this.inner.list(service);
  }
  query(service: string, options?: QueryOptions): Promise<ServiceView> {
    return this.inner.query(service, options);
  }
  watch(service: string, options?: WatchOptions): ServiceWatch {
    return this.inner.watch(service, options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe('SelfRegistration', () => {
  let clock: ManualClock;
  let registry: CountingRegistry;

  beforeEach(() => {
    clock = new ManualClock();
    registry = new CountingRegistry(new MemoryRegistry({ clock }));
  });
  afterEach(() => registry.close());

  it('registers on start and stays listed by heartbeating every third of the TTL', async () => {
    const self = new SelfRegistration(registry, registration('users-1'), { clock });
    await self.start();
    expect(await registry.list('users')).toHaveLength(1);
    await clock.advanceAsync(30_000);
    expect(registry.heartbeats).toBe(30);
    expect(await registry.list('users')).toHaveLength(1);
    await self.close();
  });

  it('deregisters on close and stops heartbeating', async () => {
    const self = new SelfRegistration(registry, registration('users-1'), { clock });
    await self.start();
    await self.close();
    await self.close();
    expect(await registry.list('users')).toEqual([]);
    await clock.advanceAsync(10_000);
    expect(registry.heartbeats).toBe(0);
  });

  it('registers again at once when the registry has forgotten the instance', async () => {
    const self = new SelfRegistration(registry, registration('users-1'), { clock });
    let reregistered = 0;
    self.onReregistered(() => reregistered++);
    await self.start();
    // The registry restarted empty.
    await registry.inner.deregister('users-1');
    await clock.advanceAsync(1_000);
    expect(reregistered).toBe(1);
    expect(registry.registrations).toBe(2);
    expect(await registry.list('users')).toHaveLength(1);
    await self.close();
  });

  it('also registers again when an older Consul answers 500 "does not have associated TTL"', async () => {
    registry.oldConsul = true;
    const self = new SelfRegistration(registry, registration('users-1'), { clock });
    await self.start();
    await registry.inner.deregister('users-1');
    await clock.advanceAsync(1_000);
    expect(registry.registrations).toBe(2);
    expect(await registry.list('users')).toHaveLength(1);
    await self.close();
  });

  it('reports failed heartbeats and keeps trying while the registry is unreachable', async () => {
    const self = new SelfRegistration(registry, registration('users-1'), { clock });
    const failures: unknown[] = [];
    self.onHeartbeatFailed((e) => failures.push(e));
    await self.start();
    registry.down = true;
    await clock.advanceAsync(3_000);
    expect(failures).toHaveLength(3);
    registry.down = false;
    await clock.advanceAsync(1_000);
    expect(failures).toHaveLength(3);
    expect(await registry.list('users')).toHaveLength(1);
    await self.close();
  });

  it('describes its state: registered when, the last heartbeat, failures in a row and in all, registrations again', async () => {
    const self = new SelfRegistration(registry, registration('users-1'), { clock });
    expect(self.describe()).toEqual({
      state: 'new',
      instanceId: 'users-1',
      ttlMs: 3_000,
      heartbeatMs: 1_000,
      registered: false,
      registeredAt: undefined,
      lastHeartbeatAt: undefined,
      consecutiveFailures: 0,
      failures: 0,
      reregistrations: 0,
      lastError: undefined,
    });
    clock.advance(500);
    await self.start();
    await clock.advanceAsync(1_000);
    expect(self.describe()).toMatchObject({ state: 'running', registeredAt: 500, lastHeartbeatAt: 1_500 });
    registry.down = true;
    await clock.advanceAsync(2_000);
    expect(self.describe()).toMatchObject({
      lastHeartbeatAt: 1_500,
      consecutiveFailures: 2,
      failures: 2,
      lastError: expect.stringContaining('down'),
    });
    registry.down = false;
    await registry.inner.deregister('users-1');
    await clock.advanceAsync(1_000);
    expect(self.describe()).toMatchObject({
      registeredAt: 4_500,
      consecutiveFailures: 0,
      failures: 2,
      reregistrations: 1,
    });
    await clock.advanceAsync(1_000);
    expect(self.describe()).toMatchObject({ lastHeartbeatAt: 5_500, consecutiveFailures: 0 });
    await self.close();
    expect(self.describe().state).toBe('closed');
  });

  it('reports a recovery once per outage, so that logs can say an outage began and ended', async () => {
    const self = new SelfRegistration(registry, registration('users-1'), { clock });
    let recoveries = 0;
    self.onHeartbeatRecovered(() => recoveries++);
    await self.start();
    await clock.advanceAsync(2_000);
    expect(recoveries).toBe(0);
    registry.down = true;
    await clock.advanceAsync(3_000);
    registry.down = false;
    await clock.advanceAsync(3_000);
    expect(recoveries).toBe(1);
    await self.close();
  });

  it('fails start when the first registration fails, and closes without deregistering', async () => {
    // Nothing listens on port 1 of the loopback interface.
    const unreachable: Registry = new ConsulRegistry({ url: 'http://127.0.0.1:1', timeoutMs: 1_000 });
    const self = new SelfRegistration(unreachable, registration('users-1'), { clock });
    await expect(self.start()).rejects.toBeInstanceOf(RegistryUnavailableError);
    await expect(self.close()).resolves.toBeUndefined();
    await unreachable.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('with startWhenUnreachable, starts while the registry is unreachable and registers with backoff once it answers', async () => {
    registry.registerAnswer = 'unreachable';
    const self = new SelfRegistration(registry, registration('users-1'), {
      clock,
      startWhenUnreachable: true,
      random: () => 0,
    });
    const heartbeatFailures: unknown[] = [];
    self.onHeartbeatFailed((error) => heartbeatFailures.push(error));
    let registered = 0;
    self.onRegistered(() => registered++);
    await self.start();
    expect(self.describe()).toMatchObject({ state: 'running', registered: false, consecutiveFailures: 1 });

    // Backoff from 500 ms doubling up to the heartbeat interval (1 000 ms), at least half of each.
    await clock.advanceAsync(250);
    expect(registry.registrations).toBe(2);
    await clock.advanceAsync(500);
    expect(registry.registrations).toBe(3);
    await clock.advanceAsync(10_000);
    expect(registry.registrations).toBe(3 + 20);
    expect(registry.heartbeats).toBe(0);

    registry.registerAnswer = 'ok';
    await clock.advanceAsync(500);
    expect(await registry.list('users')).toHaveLength(1);
    expect(registered).toBe(1);
    expect(self.describe()).toMatchObject({ registered: true, registeredAt: 11_250, consecutiveFailures: 0 });
    await clock.advanceAsync(3_000);
    expect(registry.heartbeats).toBe(3);
    expect(registered).toBe(1);
    // Attempts to register are not heartbeats: the one outage is told by start().
    expect(heartbeatFailures).toEqual([]);
    await self.close();
    expect(await registry.list('users')).toEqual([]);
  });

  it('closed while it tries to register, stops trying and leaves nothing registered', async () => {
    registry.registerAnswer = 'unreachable';
    const self = new SelfRegistration(registry, registration('users-1'), { clock, startWhenUnreachable: true });
    await self.start();
    await self.close();
    expect(clock.pendingTimers).toBe(0);
    expect(self.describe()).toMatchObject({ state: 'closed', registered: false });
  });

  it('fails start when the registry refuses the registration, even with startWhenUnreachable', async () => {
    registry.registerAnswer = 'refused';
    const self = new SelfRegistration(registry, registration('users-1'), { clock, startWhenUnreachable: true });
    await expect(self.start()).rejects.toBeInstanceOf(RegistryRejectedError);
    expect(clock.pendingTimers).toBe(0);
  });

  it('refuses a heartbeat interval that cannot keep the instance alive', () => {
    expect(() => new SelfRegistration(registry, registration('users-1'), { clock, heartbeatMs: 3_000 })).toThrow(
      ConfigError,
    );
    expect(() => new SelfRegistration(registry, { ...registration('users-1'), ttlMs: 0 })).toThrow(
      'invalid configuration "ttlMs": must be > 0, got 0',
    );
  });
});
