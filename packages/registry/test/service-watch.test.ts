import { ConfigError, ManualClock, RegistryUnavailableError } from '@trellis/core';
import { ServiceWatch, type ServiceView, type WatchEvent } from '@trellis/registry';
import { registration } from './fixtures.js';
import { SwitchableRegistry } from './switchable-registry.js';

describe('ServiceWatch', () => {
  let clock: ManualClock;
  let registry: SwitchableRegistry;
  let watch: ServiceWatch;
  let events: WatchEvent[];

  const ids = (view: ServiceView | undefined): string[] => view?.healthy.map((i) => i.id) ?? [];
  const summary = (): string[] =>
    events.map((e) =>
      'instance' in e
        ? `${e.type} ${e.instance.id}`
        : e.type === 'registry-recovered'
          ? `${e.type} reset=${e.reset}`
          : e.type,
    );
  function start(options: ConstructorParameters<typeof ServiceWatch>[2] = {}): ServiceWatch {
    watch = registry.watch('users', { random: () => 1, ...options });
    watch.onEvent((e) => events.push(e));
    return watch;
  }

  beforeEach(() => {
    clock = new ManualClock();
    registry = new SwitchableRegistry(clock);
    events = [];
  });
  afterEach(async () => {
    await watch?.close();
    await registry.close();
  });

  it('answers its first view, then holds one blocking query while nothing changes', async () => {
    await registry.register(registration('users-1'));
    start();
    expect(ids(await watch.ready())).toEqual(['users-1']);
    expect(summary()).toEqual(['instance-added users-1']);
    await clock.advanceAsync(2_900); // inside the fixture's 3 s TTL
    expect(registry.queries).toBe(2);
  });

  it('reports an instance registering, turning unhealthy, healthy again, changing and leaving', async () => {
    start();
    await watch.ready();
    await registry.register(registration('users-1'));
    await clock.advanceAsync(50);
    expect(ids(watch.view)).toEqual(['users-1']);

    await clock.advanceAsync(3_000); // the fixture's TTL
    expect(watch.view?.unhealthy.map((i) => i.id)).toEqual(['users-1']);
    await registry.heartbeat('users-1');
    await clock.advanceAsync(50);
    const moved = registration('users-1');
    await registry.register({ ...moved, instance: { ...moved.instance, port: 4999 } });
    await clock.advanceAsync(50);
    await registry.deregister('users-1');
    await clock.advanceAsync(50);

    expect(summary()).toEqual([
      'instance-added users-1',
      'instance-removed users-1',
      'instance-added users-1',
      'instance-changed users-1',
      'instance-removed users-1',
    ]);
    expect(ids(watch.view)).toEqual([]);
  });

  it('keeps a floor between queries, however often the service changes', async () => {
    start({ floorMs: 100 });
    await watch.ready();
    let registered = 0;
    for (let t = 0; t < 1_000; t += 10) {
      await registry.register(registration(`users-${registered++}`));
      await clock.advanceAsync(10);
    }
    // One query per 100 ms at most, plus the first.
    expect(registry.queries).toBeLessThanOrEqual(11);
    await clock.advanceAsync(100);
    expect(watch.view?.healthy).toHaveLength(100);
  });

  it('keeps its view through an outage, backing off exponentially with a cap, and says so once each way', async () => {
    await registry.register(registration('users-1'));
    start({ backoffBaseMs: 100, backoffMaxMs: 1_000 });
    await watch.ready();
    await clock.advanceAsync(50); // past the floor: a query is held
    const before = registry.queries;
    registry.down();
    // random() = 1: each wait is the whole ceiling: 100, 200, 400, 800, 1000, 1000 ms.
    await clock.advanceAsync(3_499);
    expect(registry.queries - before).toBe(5);
    await clock.advanceAsync(1);
    expect(registry.queries - before).toBe(6);
    expect(ids(watch.view)).toEqual(['users-1']);
    expect(ids(await watch.ready())).toEqual(['users-1']);

    await registry.inner.heartbeat('users-1'); // its 3 s TTL ran out meanwhile
    await registry.inner.register(registration('users-2'));
    registry.up();
    await clock.advanceAsync(1_000);
    expect(ids(watch.view)).toEqual(['users-1', 'users-2']);
    expect(summary()).toEqual([
      'instance-added users-1',
      'registry-unavailable',
      'registry-recovered reset=false',
      'instance-added users-2',
    ]);
    const unavailable = events[1] as Extract<WatchEvent, { type: 'registry-unavailable' }>;
    expect(RegistryUnavailableError.is(unavailable.error)).toBe(true);
  });

  it('draws each backoff at random below its ceiling (full jitter)', async () => {
    const draws = [0.5, 0.25, 0];
    start({ backoffBaseMs: 1_000, floorMs: 50, random: () => draws.shift() ?? 0 });
    await watch.ready();
    await clock.advanceAsync(50);
    registry.down(); // the held query fails at once: the first wait is 0.5 x 1000 ms
    const before = registry.queries;
    await clock.advanceAsync(499);
    expect(registry.queries - before).toBe(0);
    await clock.advanceAsync(1); // then 0.25 x 2000 ms
    expect(registry.queries - before).toBe(1);
    await clock.advanceAsync(500);
    expect(registry.queries - before).toBe(2);
    // A draw of 0 still waits the floor: no tight loop.
    await clock.advanceAsync(49);
    expect(registry.queries - before).toBe(2);
    await clock.advanceAsync(1);
    expect(registry.queries - before).toBe(3);
  });

  it('says the registry recovered with reset when it came back with its index gone back (restarted empty)', async () => {
    await registry.register(registration('users-1'));
    await registry.register(registration('users-2'));
    start();
    await watch.ready();
    registry.down();
    await clock.advanceAsync(50);
    await registry.restart();
    await registry.register(registration('users-1'));
    // Not blocking on the old, higher index: the first query after a failure reads at once.
    await clock.advanceAsync(250);
    expect(ids(watch.view)).toEqual(['users-1']);
    expect(summary()).toEqual([
      'instance-added users-1',
      'instance-added users-2',
      'registry-unavailable',
      'registry-recovered reset=true',
      'instance-removed users-2',
    ]);
  });

  it('rejects ready() with the failure when it never had a view, and resolves once one comes', async () => {
    registry.down();
    start({ backoffBaseMs: 100 });
    await expect(watch.ready()).rejects.toBeInstanceOf(RegistryUnavailableError);
    await expect(watch.ready()).rejects.toBeInstanceOf(RegistryUnavailableError);
    await registry.inner.register(registration('users-1'));
    registry.up();
    await clock.advanceAsync(100);
    expect(ids(await watch.ready())).toEqual(['users-1']);
  });

  it('abandons its held query on close and queries no more', async () => {
    start();
    await watch.ready();
    await watch.close();
    const after = registry.queries;
    await registry.register(registration('users-1'));
    await clock.advanceAsync(120_000);
    expect(registry.queries).toBe(after);
  });

  it('refuses a negative or non-finite option, naming it', () => {
    const query = (): Promise<ServiceView> => Promise.resolve({ index: 1, healthy: [], unhealthy: [] });
    expect(() => new ServiceWatch('users', query, { floorMs: -1 })).toThrow(ConfigError);
    expect(() => new ServiceWatch('users', query, { backoffMaxMs: Number.NaN })).toThrow('watch.backoffMaxMs');
  });
});
