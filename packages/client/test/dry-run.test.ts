import { ManualClock, type DryRunEvaluated, type ServiceInstance } from '@trellis/core';
import { ServiceClient, type ClientRules } from '@trellis/client';
import { RoundRobin } from '@trellis/loadbalancer';
import { Discovery, MemoryRegistry } from '@trellis/registry';
import { startServer, type TestServer } from './http-fixtures.js';
import { refusal } from '../../core/test/config-refusal.js';

/** A seeded generator of numbers in [0, 1) (mulberry32): tests never use Math.random. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('ServiceClient.dryRun: candidate rules beside the live ones', () => {
  let registry: MemoryRegistry;
  let discovery: Discovery;
  const servers: TestServer[] = [];
  const clients: ServiceClient[] = [];

  async function serve(id: string, version: string): Promise<void> {
    const server = await startServer(id);
    servers.push(server);
    const instance: ServiceInstance = { ...server.instance, meta: { ...server.instance.meta, version } };
    await registry.register({ instance, ttlMs: 60_000, deregisterAfterMs: 60_000 });
  }
  const client = (options: Omit<ConstructorParameters<typeof ServiceClient>[0], 'service' | 'discovery'>) => {
    const made = new ServiceClient({ service: 'users', discovery, ...options });
    clients.push(made);
    return made;
  };
  // The live rules split 50/50 between v1 and v2; the candidate sends everything to v2 and
  // would delay every call by a minute and abort half.
  const live = {
    default: {
      split: [
        { subset: { version: 'v1' }, weight: 50 },
        { subset: { version: 'v2' }, weight: 50 },
      ],
    },
  };
  const candidate: ClientRules = {
    routing: { default: { to: { version: 'v2' } } },
    faults: [{ name: 'chaos', delay: { share: 1, ms: 60_000 }, abort: { share: 0.5, status: 503 } }],
  };

  beforeEach(async () => {
    registry = new MemoryRegistry();
    discovery = new Discovery(registry);
    await serve('users-1', 'v1');
    await serve('users-2', 'v1');
    await serve('users-3', 'v2');
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await discovery.close();
    await registry.close();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('changes no call (same instances, replies and timing as without it) yet counts the reroutes and faults it would make', async () => {
    const clock = new ManualClock();
    // Two clients alike, on the same fixed random sequence; only the second runs the dry run.
    const make = (): ServiceClient =>
      client({ clock, strategy: 'random', random: seeded(7), dryRunRandom: seeded(99), rules: live });
    const plain = make();
    const watched = make();
    const events: DryRunEvaluated[] = [];
    watched.onEvent((e) => {
      if (e.type === 'dry-run') events.push(e);
    });
    watched.dryRun(candidate, 8);
    const calls = 40;
    let elsewhere = 0;
    for (let i = 0; i < calls; i++) {
      const a = await plain.request<{ servedBy: string }>({ path: `/users/${i}` });
      const b = await watched.request<{ servedBy: string }>({ path: `/users/${i}` });
      expect([b.instance.id, b.status, b.body]).toEqual([a.instance.id, a.status, a.body]);
      expect(b.status).toBe(200);
      if (b.instance.id !== 'users-3') elsewhere++;
    }
    // The candidate's one-minute delay never happened: the clock never moved, and every call answered.
    expect(clock.now()).toBe(0);
    expect(elsewhere).toBeGreaterThan(0);
    expect(elsewhere).toBeLessThan(calls);

    const status = watched.describe();
    expect(status.dryRunVersion).toBe(8);
    expect(status.dryRun).toMatchObject({
      version: 8,
      attempts: calls,
      routed: calls,
      routedElsewhere: elsewhere,
      faultMatched: calls,
      delayed: calls,
    });
    const aborted = status.dryRun?.aborted ?? 0;
    expect(aborted).toBeGreaterThan(calls * 0.25);
    expect(aborted).toBeLessThan(calls * 0.75);

    const routes = events.filter((e) => e.effect === 'route');
    expect(routes).toHaveLength(elsewhere);
    expect(routes[0]).toMatchObject({
      type: 'dry-run',
      effect: 'route',
      service: 'users',
      version: 8,
      attempt: 1,
      live: 'default',
      candidate: 'default',
    });
    expect(routes.every((e) => e.instance !== 'users-3')).toBe(true);
    const faults = events.filter((e) => e.effect === 'fault');
    expect(faults.filter((e) => e.kind === 'delay')).toHaveLength(calls);
    expect(faults.filter((e) => e.kind === 'abort')).toHaveLength(aborted);
    expect(faults[0]).toMatchObject({ effect: 'fault', candidate: 'chaos', live: undefined, version: 8 });
    // Nothing of it reached the live rules.
    expect(status).toMatchObject({ rules: undefined, faultRules: [], routingRules: live });

    watched.dryRun(undefined);
    const seen = events.length;
    await watched.get('/users/1');
    expect(events).toHaveLength(seen);
    expect(watched.describe()).toMatchObject({ dryRun: undefined, dryRunVersion: undefined });
  });

  it('names the live fault rule beside the candidate one, and takes a new candidate with counts from zero', async () => {
    const users = client({
      strategy: new RoundRobin(),
      faults: [{ name: 'live-slow', match: { path: { prefix: '/slow' } }, delay: { share: 0, ms: 10 } }],
      dryRunRandom: () => 0,
    });
    const events: DryRunEvaluated[] = [];
    users.onEvent((e) => {
      if (e.type === 'dry-run') events.push(e);
    });
    users.dryRun({ faults: [{ name: 'candidate-abort', abort: { share: 0.5, connection: 'refused' } }] }, 1);
    await users.get('/slow/1');
    await users.get('/fast/1');
    expect(
      events.map((e) => [
        e.effect,
        e.effect === 'limit' ? e.limit : e.live,
        e.effect === 'limit' ? undefined : e.candidate,
      ]),
    ).toEqual([
      ['fault', 'live-slow', 'candidate-abort'],
      ['fault', undefined, 'candidate-abort'],
    ]);
    // A client given a strategy object has no routing of its own to compare: only faults count.
    expect(users.describe().dryRun).toMatchObject({ attempts: 2, routed: 0, routedElsewhere: 0, aborted: 2 });
    users.dryRun({}, 2);
    expect(users.describe().dryRun).toMatchObject({ version: 2, attempts: 0, aborted: 0 });
  });

  it('refuses a candidate the client could not apply, naming the field, and keeps the dry run in progress', () => {
    const users = client({ strategy: new RoundRobin(), breakers: false });
    users.dryRun({ faults: [] }, 4);
    expect(refusal(() => users.dryRun({ routing: {} }, 5)).field).toBe('routing');
    expect(refusal(() => users.dryRun({ breaker: { minimumCalls: 1 } }, 5)).field).toBe('breaker');
    expect(refusal(() => users.dryRun({ retry: { budget: { ttlMs: 5 } } }, 5)).field).toBe('retry.budget.ttlMs');
    expect(users.describe().dryRunVersion).toBe(4);
  });
});
