import { ManualClock, type ServiceInstance } from '@trellis/core';
import { TrellisMetrics } from '@trellis/metrics';
import { Discovery, MemoryRegistry, SelfRegistration, type DiscoveryEvent } from '@trellis/registry';
import { CircuitBreakerRegistry } from '@trellis/resilience';

type Series = { labels: Record<string, string | number>; value: number };

async function series(metrics: TrellisMetrics, name: string): Promise<Array<[string, number]>> {
  const metric = metrics.registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  // Each series as "label=value,..." and its value, for short expectations.
  return ((await metric.get()).values as Series[]).map((s) => [
    Object.entries(s.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(','),
    s.value,
  ]);
}

function instance(id: string, service = 'users'): ServiceInstance {
  return { id, service, address: '127.0.0.1', port: 4000, tags: [], meta: { weight: 1, labels: {} } };
}

// The first discovery event of `type`, bounded by Jest's timeout: no polling, no sleeps.
function next(discovery: Discovery, type: DiscoveryEvent['type']): Promise<DiscoveryEvent> {
  return new Promise((resolve) => {
    const subscription = discovery.onEvent((event) => {
      if (event.type !== type) return;
      subscription.dispose();
      resolve(event);
    });
  });
}

describe('TrellisMetrics.watch', () => {
  let clock: ManualClock;
  let registry: MemoryRegistry;
  let discovery: Discovery;
  let metrics: TrellisMetrics;

  beforeEach(() => {
    clock = new ManualClock(1_000_000);
    registry = new MemoryRegistry({ clock });
    discovery = new Discovery(registry, { clock });
    metrics = new TrellisMetrics({ processMetrics: false, clock });
  });
  afterEach(async () => {
    metrics.dispose();
    await discovery.close();
    await registry.close();
  });

  it('shows the instances by health, panic and the age of the last change of every watched service', async () => {
    metrics.watch({ discovery });
    await registry.register({ instance: instance('users-1'), ttlMs: 600_000, deregisterAfterMs: 600_000 });
    for (const id of ['users-2', 'users-3']) {
      await registry.register({ instance: instance(id), ttlMs: 1_000, deregisterAfterMs: 600_000 });
    }
    // Nothing watched yet: no series, rather than zeros for services nobody calls.
    expect(await series(metrics, 'trellis_discovery_instances')).toEqual([]);
    await discovery.instances('users');
    expect(await series(metrics, 'trellis_discovery_instances')).toEqual([
      ['service=users,health=healthy', 3],
      ['service=users,health=unhealthy', 0],
    ]);
    expect(await series(metrics, 'trellis_discovery_panic')).toEqual([['service=users', 0]]);
    expect(await series(metrics, 'trellis_discovery_update_age_seconds')).toEqual([['service=users', 0]]);
    expect(await series(metrics, 'trellis_registry_reachable')).toEqual([['', 1]]);

    // Two TTLs run out: one healthy instance of three is below the panic threshold (half).
    const panic = next(discovery, 'panic');
    clock.advance(1_000);
    await panic;
    expect(await series(metrics, 'trellis_discovery_instances')).toEqual([
      ['service=users,health=healthy', 1],
      ['service=users,health=unhealthy', 2],
    ]);
    expect(await series(metrics, 'trellis_discovery_panic')).toEqual([['service=users', 1]]);
    // In panic calls go to all three, as before: the list calls use did not change.
    clock.advance(4_500);
    expect(await series(metrics, 'trellis_discovery_update_age_seconds')).toEqual([['service=users', 5.5]]);
  });

  it('shows the registration state, and registry reachability from watches and heartbeats', async () => {
    const self = new SelfRegistration(
      registry,
      { instance: instance('forum-1', 'forum'), ttlMs: 3_000, deregisterAfterMs: 60_000 },
      { clock },
    );
    metrics.watch({ discovery, registration: self });
    const states = async () =>
      (await series(metrics, 'trellis_registration_state')).filter(([, v]) => v === 1).map(([labels]) => labels);
    expect(await states()).toEqual(['state=new']);
    await self.start();
    await registry.register({ instance: instance('users-1'), ttlMs: 600_000, deregisterAfterMs: 600_000 });
    await discovery.instances('users');
    expect(await states()).toEqual(['state=registered']);
    expect(await series(metrics, 'trellis_registry_reachable')).toEqual([['', 1]]);

    // The registry goes away: the watch's next query fails, then the next heartbeat.
    const unavailable = next(discovery, 'registry-unavailable');
    const heartbeatFailed = new Promise<void>((resolve) => self.onHeartbeatFailed(() => resolve()));
    await registry.close();
    // The watch waits out its floor between queries (50 ms) before it asks again.
    clock.advance(50);
    await unavailable;
    expect(await series(metrics, 'trellis_registry_reachable')).toEqual([['', 0]]);
    clock.advance(950);
    await heartbeatFailed;
    expect(await states()).toEqual(['state=failing']);
    // What discovery knew is still shown: calls go on against it.
    expect(await series(metrics, 'trellis_discovery_instances')).toEqual([
      ['service=users,health=healthy', 1],
      ['service=users,health=unhealthy', 0],
    ]);
    await self.close().catch(() => undefined);
    expect(await states()).toEqual(['state=closed']);
  });

  it('shows every breaker of a watched registry, and stops showing what it no longer watches', async () => {
    const breakers = new CircuitBreakerRegistry({ clock, minimumCalls: 1 });
    try {
      const watching = metrics.watch({ breakers });
      breakers.get('users', 'users-1');
      const open = breakers.get('users', 'users-2');
      open.tryAcquire();
      open.onFailure();
      breakers.get('mail');
      const current = async () =>
        (await series(metrics, 'trellis_circuit_state')).filter(([, v]) => v === 1).map(([labels]) => labels);
      expect(await current()).toEqual([
        'service=users,target_instance=users-1,state=closed',
        'service=users,target_instance=users-2,state=open',
        'service=mail,target_instance=,state=closed',
      ]);
      breakers.forget('users-1');
      expect(await current()).toHaveLength(2);
      watching.dispose();
      // Back to the gauge fed from events: the one change seen (users-2 opening) was not subscribed to.
      expect(await series(metrics, 'trellis_circuit_state')).toEqual([]);
    } finally {
      await breakers.close();
    }
  });
});
