import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClosedError, ConfigError, ManualClock, RegistryUnavailableError, type ServiceInstance } from '@trellis/core';
import { Discovery, type DiscoveryEvent, type DiscoveryOptions, type InstancesChanged } from '@trellis/registry';
import { registration } from './fixtures.js';
import { SwitchableRegistry } from './switchable-registry.js';

describe('Discovery', () => {
  let clock: ManualClock;
  let registry: SwitchableRegistry;
  let discovery: Discovery;
  let events: DiscoveryEvent[];
  const dirs: string[] = [];

  const ids = (list: readonly ServiceInstance[]): string[] => list.map((i) => i.id);
  const types = (): string[] => events.map((e) => e.type);
  function open(options: DiscoveryOptions = {}): Discovery {
    discovery = new Discovery(registry, { clock, random: () => 1, ...options });
    discovery.onEvent((e) => events.push(e));
    return discovery;
  }
  /** Registers instances with a TTL long enough to outlast a test. */
  async function register(...instanceIds: string[]): Promise<void> {
    for (const id of instanceIds) await registry.register({ ...registration(id), ttlMs: 600_000 });
  }

  beforeEach(() => {
    clock = new ManualClock();
    registry = new SwitchableRegistry(clock);
    events = [];
  });
  afterEach(async () => {
    await discovery?.close();
    await registry.close();
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('loads a service on first use, then answers from the cache it keeps with one held query', async () => {
    await register('users-1');
    open();
    expect(ids(await discovery.instances('users'))).toEqual(['users-1']);
    for (let i = 0; i < 10; i++) await discovery.instances('users');
    await clock.advanceAsync(30_000);
    expect(registry.queries).toBe(2);
  });

  it('shares the first read among concurrent first calls', async () => {
    await register('users-1');
    open();
    const lists = await Promise.all([discovery.instances('users'), discovery.instances('users')]);
    expect(lists.map(ids)).toEqual([['users-1'], ['users-1']]);
    expect(registry.queries).toBe(1);
  });

  it('learns of instances coming and going as soon as the registry answers the held query', async () => {
    const changes: InstancesChanged[] = [];
    await register('users-1');
    open().onChanged((c) => changes.push(c));
    await discovery.instances('users');
    await clock.advanceAsync(50); // the floor; the next query is held

    await register('users-2');
    await clock.advanceAsync(0);
    expect(ids(await discovery.instances('users'))).toEqual(['users-1', 'users-2']);
    await clock.advanceAsync(50);
    await registry.deregister('users-1');
    await clock.advanceAsync(0);
    expect(ids(await discovery.instances('users'))).toEqual(['users-2']);
    expect(changes.map((c) => ids(c.instances))).toEqual([['users-1', 'users-2'], ['users-2']]);
    expect(types()).toEqual(['instance-added', 'instance-added', 'instance-removed']);
  });

  it('keeps calling the last known instances while the registry is down, and catches up after', async () => {
    await register('users-1');
    open();
    await discovery.instances('users');
    await clock.advanceAsync(50);
    registry.down();
    await clock.advanceAsync(10_000);
    expect(ids(await discovery.instances('users'))).toEqual(['users-1']);
    expect(types()).toEqual(['instance-added', 'registry-unavailable']);

    await registry.inner.register({ ...registration('users-2'), ttlMs: 600_000 });
    registry.up();
    await clock.advanceAsync(10_000);
    expect(ids(await discovery.instances('users'))).toEqual(['users-1', 'users-2']);
  });

  it('describes a watched service: its view, when it last changed, and whether the registry answers', async () => {
    await register('users-1');
    open();
    expect(discovery.describe('users')).toBeUndefined();
    expect(discovery.services).toEqual([]);
    clock.advance(1_000);
    await discovery.instances('users');
    expect(discovery.services).toEqual(['users']);
    expect(discovery.describe('users')).toMatchObject({
      service: 'users',
      instances: [expect.objectContaining({ id: 'users-1' })],
      healthy: [expect.objectContaining({ id: 'users-1' })],
      unhealthy: [],
      panic: false,
      registryReachable: true,
      updatedAt: 1_000,
      fromFailoverFile: false,
    });
    await clock.advanceAsync(50);
    await register('users-2');
    await clock.advanceAsync(0);
    expect(discovery.describe('users')?.updatedAt).toBe(1_050);
    expect(ids(discovery.describe('users')?.instances ?? [])).toEqual(['users-1', 'users-2']);

    registry.down();
    await clock.advanceAsync(1_000);
    expect(discovery.describe('users')).toMatchObject({ registryReachable: false, updatedAt: 1_050 });
    registry.up();
    await clock.advanceAsync(10_000);
    expect(discovery.describe('users')).toMatchObject({ registryReachable: true, updatedAt: 1_050 });
  });

  it('fails a first call while the registry is down, and succeeds once it is back', async () => {
    await register('users-1');
    registry.down();
    open();
    await expect(discovery.instances('users')).rejects.toBeInstanceOf(RegistryUnavailableError);
    registry.up();
    await clock.advanceAsync(250);
    expect(ids(await discovery.instances('users'))).toEqual(['users-1']);
  });

  it('keeps instances known before a registry restart beside the ones registered again, for the grace only', async () => {
    await register('users-1', 'users-2');
    open({ recoveryGraceMs: 5_000 });
    await discovery.instances('users');
    await clock.advanceAsync(50);
    await registry.restart(); // empty, like a registry started with --dev
    await register('users-2');
    await clock.advanceAsync(250);
    expect(types()).toContain('registry-recovered');
    // users-1 has not registered again yet: it still gets calls.
    expect(ids(await discovery.instances('users'))).toEqual(['users-1', 'users-2']);
    await clock.advanceAsync(4_999);
    expect(ids(await discovery.instances('users'))).toEqual(['users-1', 'users-2']);
    await clock.advanceAsync(1);
    expect(ids(await discovery.instances('users'))).toEqual(['users-2']);
  });

  it('calls every registered instance when fewer than the panic threshold are healthy, and says so', async () => {
    await register('users-1', 'users-2');
    await registry.register(registration('users-3')); // 3 s TTL: turns critical
    await registry.register(registration('users-4'));
    open({ panicThreshold: 0.5 });
    expect(ids(await discovery.instances('users'))).toEqual(['users-1', 'users-2', 'users-3', 'users-4']);
    await clock.advanceAsync(3_000);
    // 2 of 4 healthy is not fewer than half.
    expect(ids(await discovery.instances('users'))).toEqual(['users-1', 'users-2']);

    await registry.deregister('users-2'); // 1 of 3 healthy: panic
    await clock.advanceAsync(50);
    expect(ids(await discovery.instances('users'))).toEqual(['users-1', 'users-3', 'users-4']);
    expect(events.find((e) => e.type === 'panic')).toEqual({
      type: 'panic',
      service: 'users',
      healthy: 1,
      registered: 3,
    });

    await registry.heartbeat('users-3'); // 2 of 3 healthy
    await clock.advanceAsync(50);
    expect(ids(await discovery.instances('users'))).toEqual(['users-1', 'users-3']);
    expect(types().filter((t) => t.startsWith('panic'))).toEqual(['panic', 'panic-over']);
  });

  it('never panics with the threshold at 0, and then asks for healthy instances only', async () => {
    await register('users-1');
    await registry.register(registration('users-2'));
    open({ panicThreshold: 0 });
    await discovery.instances('users');
    await clock.advanceAsync(3_000);
    await registry.deregister('users-1');
    await clock.advanceAsync(50);
    expect(ids(await discovery.instances('users'))).toEqual([]);
    expect(types()).not.toContain('panic');
  });

  it('starts from its failover file when the registry is down at start', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-failover-'));
    dirs.push(dir);
    await register('users-1', 'users-2');
    const first = new Discovery(registry, { clock, failoverDir: dir });
    await first.instances('users');
    await first.close();
    expect(fs.readdirSync(dir)).toEqual(['users.json']);

    registry.down();
    open({ failoverDir: dir });
    expect(ids(await discovery.instances('users'))).toEqual(['users-1', 'users-2']);
    expect(types()).toEqual(['registry-unavailable', 'failover-loaded']);
    expect(discovery.describe('users')).toMatchObject({ fromFailoverFile: true, registryReachable: false });
    // A service never saved still fails, naming the registry.
    await expect(discovery.instances('mail')).rejects.toBeInstanceOf(RegistryUnavailableError);

    // Once the registry answers, its view replaces the saved one.
    await registry.inner.deregister('users-2');
    registry.up();
    await clock.advanceAsync(250);
    expect(ids(await discovery.instances('users'))).toEqual(['users-1', 'users-2']); // grace: users-2 was known
    expect(discovery.describe('users')).toMatchObject({ fromFailoverFile: false, registryReachable: true });
    await clock.advanceAsync(10_000);
    expect(ids(await discovery.instances('users'))).toEqual(['users-1']);
  });

  it('ignores a corrupt failover file, says so, and fails as if there were none', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-failover-'));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'users.json'), '{"format":"trellis-discovery-failover"');
    registry.down();
    open({ failoverDir: dir });
    await expect(discovery.instances('users')).rejects.toBeInstanceOf(RegistryUnavailableError);
    const failed = events.find((e) => e.type === 'failover-failed');
    expect(String((failed as { error: unknown }).error)).toContain(path.join(dir, 'users.json'));
  });

  it('watches only the services asked for', async () => {
    await register('users-1');
    await registry.register({ ...registration('mail-1', 'mail'), ttlMs: 600_000 });
    open();
    await discovery.instances('users');
    await registry.register({ ...registration('mail-2', 'mail'), ttlMs: 600_000 });
    await clock.advanceAsync(1_000);
    expect(registry.queries).toBe(2);
  });

  it('stops watching on close and refuses later calls', async () => {
    await register('users-1');
    open();
    await discovery.instances('users');
    await discovery.close();
    const before = registry.queries;
    await register('users-2');
    await clock.advanceAsync(120_000);
    expect(registry.queries).toBe(before);
    await expect(discovery.instances('users')).rejects.toBeInstanceOf(ClosedError);
  });

  it('refuses a panic threshold outside [0, 1], naming it', () => {
    expect(() => new Discovery(registry, { panicThreshold: 1.5 })).toThrow(ConfigError);
    expect(() => new Discovery(registry, { panicThreshold: -1 })).toThrow('discovery.panicThreshold');
  });
});
