import { ClosedError, ManualClock, RegistryUnavailableError, type ServiceInstance } from '@trellis/core';
import { Discovery, MemoryRegistry, type InstancesChanged, type Registration, type Registry } from '@trellis/registry';
import { registration } from './fixtures.js';

/** A registry that can be switched off, the way a network partition looks to a caller. */
class SwitchableRegistry implements Registry {
  up = true;
  lists = 0;
  constructor(readonly inner: Registry) {}
  register(r: Registration): Promise<void> {
    return this.inner.register(r);
  }
  heartbeat(id: string): Promise<void> {
    return this.inner.heartbeat(id);
  }
  deregister(id: string): Promise<void> {
    return this.inner.deregister(id);
  }
  async list(service: string): Promise<ServiceInstance[]> {
    this.lists++;
    if (!this.up) throw new RegistryUnavailableError('switchable', 'switched off');
    return this.inner.list(service);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe('Discovery', () => {
  let clock: ManualClock;
  let registry: SwitchableRegistry;
  let discovery: Discovery;

  beforeEach(() => {
    clock = new ManualClock();
    registry = new SwitchableRegistry(new MemoryRegistry({ clock }));
    discovery = new Discovery(registry, { clock, refreshMs: 500 });
  });
  afterEach(async () => {
    await discovery.close();
    await registry.close();
  });

  const ids = (list: readonly ServiceInstance[]): string[] => list.map((i) => i.id);

  it('loads a service on first use and answers later calls from the cache', async () => {
    await registry.register(registration('users-1'));
    expect(ids(await discovery.instances('users'))).toEqual(['users-1']);
    await discovery.instances('users');
    await discovery.instances('users');
    expect(registry.lists).toBe(1);
  });

  it('shares one registry request among concurrent first calls', async () => {
    await registry.register(registration('users-1'));
    const lists = await Promise.all([discovery.instances('users'), discovery.instances('users')]);
    expect(lists.map(ids)).toEqual([['users-1'], ['users-1']]);
    expect(registry.lists).toBe(1);
  });

  it('picks up new and removed instances on the next refresh and says so', async () => {
    const changes: InstancesChanged[] = [];
    discovery.onChanged((c) => changes.push(c));
    await registry.register(registration('users-1'));
    await discovery.instances('users');

    await registry.register(registration('users-2'));
    await clock.advanceAsync(500);
    expect(ids(await discovery.instances('users'))).toEqual(['users-1', 'users-2']);

    await registry.deregister('users-1');
    await clock.advanceAsync(500);
    expect(ids(await discovery.instances('users'))).toEqual(['users-2']);
    expect(changes.map((c) => [c.service, ids(c.instances)])).toEqual([
      ['users', ['users-1', 'users-2']],
      ['users', ['users-2']],
    ]);
  });

  it('does not report a change when a refresh finds the same instances', async () => {
    const changes: InstancesChanged[] = [];
    discovery.onChanged((c) => changes.push(c));
    await registry.register(registration('users-1'));
    await discovery.instances('users');
    await clock.advanceAsync(2_000);
    expect(registry.lists).toBe(5);
    expect(changes).toEqual([]);
  });

  it('keeps serving the last known instances while the registry is down, and resumes after', async () => {
    const failures: unknown[] = [];
    discovery.onRefreshFailed((f) => failures.push(f.error));
    await registry.register(registration('users-1'));
    await discovery.instances('users');

    registry.up = false;
    await clock.advanceAsync(1_000);
    expect(failures).toHaveLength(2);
    expect(RegistryUnavailableError.is(failures[0])).toBe(true);
    expect(ids(await discovery.instances('users'))).toEqual(['users-1']);

    await registry.register(registration('users-2'));
    registry.up = true;
    await clock.advanceAsync(500);
    expect(ids(await discovery.instances('users'))).toEqual(['users-1', 'users-2']);
  });

  it('fails a first call when the registry is down, and succeeds once it is back', async () => {
    await registry.register(registration('users-1'));
    registry.up = false;
    await expect(discovery.instances('users')).rejects.toBeInstanceOf(RegistryUnavailableError);
    registry.up = true;
    expect(ids(await discovery.instances('users'))).toEqual(['users-1']);
  });

  it('watches only the services asked for', async () => {
    await registry.register(registration('users-1'));
    await registry.register(registration('mail-1', 'mail'));
    await discovery.instances('users');
    await clock.advanceAsync(1_000);
    expect(registry.lists).toBe(3);
  });

  it('stops refreshing on close and refuses later calls', async () => {
    await registry.register(registration('users-1'));
    await discovery.instances('users');
    await discovery.close();
    const before = registry.lists;
    await clock.advanceAsync(5_000);
    expect(registry.lists).toBe(before);
    await expect(discovery.instances('users')).rejects.toBeInstanceOf(ClosedError);
  });
});
