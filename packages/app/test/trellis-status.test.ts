import { ConfigError, ManualClock } from '@trellis/core';
import { MemoryRegistry } from '@trellis/registry';
import { TrellisApp, type AppOptions, type TrellisStatus } from '@trellis/app';

const hostile = '<img src=x onerror=alert(1)>';

// GET /trellis over real HTTP: users (two instances, one of which can be made to fail) and a
// forum calling users by name, on one manual clock, so that breakers stay open and the retry
// budget's window never moves until the test says so.
describe('GET /trellis', () => {
  let clock: ManualClock;
  let registry: MemoryRegistry;
  const apps: TrellisApp[] = [];

  function app(options: Partial<AppOptions> & { service: string }): TrellisApp {
    const created = new TrellisApp({ registry, clock, logLevel: 'silent', drainMs: 0, ...options });
    apps.push(created);
    return created;
  }

  beforeEach(() => {
    clock = new ManualClock(1_700_000_000_000);
    registry = new MemoryRegistry({ clock });
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
    await registry.close();
  });

  /** Two users instances, `a` failing with 503 while `failing.a` is set, and a forum calling them. */
  async function system(forumOptions: Partial<AppOptions> = {}) {
    const failing = { a: false };
    const users = [] as TrellisApp[];
    for (const name of ['a', 'b'] as const) {
      const u = app({
        service: 'users',
        instanceId: `users-${name}`,
        version: '2.1.0',
        tags: ['http', hostile],
        labels: { owner: hostile },
      });
      u.http.get('/users/:id', async (request, reply) => {
        if (name === 'a' && failing.a) return reply.code(503).send({ error: 'overloaded' });
        return { id: (request.params as { id: string }).id, servedBy: u.instance?.id };
      });
      await u.start();
      users.push(u);
    }
    const forum = app({
      service: 'forum',
      calls: ['users'],
      zone: 'zone-1',
      tags: ['web'],
      // Round robin: the test knows where each call goes. No backoff: retries follow at once.
      client: { strategy: 'round-robin', retry: { random: () => 0 } },
      breaker: { minimumCalls: 3, failureRateThreshold: 0.5, resetTimeoutMs: 30_000 },
      ...forumOptions,
    });
    forum.http.get('/posts/:id', async (request) => {
      const { id } = request.params as { id: string };
      return { id, author: await forum.client('users').get(`/users/${id}`, { template: '/users/:id' }) };
    });
    const { url } = await forum.start();
    return { failing, users, forum, url };
  }

  async function status(url: string): Promise<TrellisStatus> {
    const response = await fetch(`${url}/trellis`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-store');
    return (await response.json()) as TrellisStatus;
  }

  it('answers JSON with the instance, its registration and each client with its instances, stages and budget', async () => {
    const { forum, url } = await system();
    const port = Number(new URL(url).port);
    // Declared calls are listed before the first call, discovery not asked yet.
    const fresh = await status(url);
    expect(fresh.clients.map((c) => [c.service, c.discovery, c.instances])).toEqual([['users', null, []]]);

    for (const id of ['1', '2', '3', '4']) expect((await fetch(`${url}/posts/${id}`)).status).toBe(200);
    const body = await status(url);
    expect(body).toEqual({
      service: 'forum',
      state: 'running',
      now: 1_700_000_000_000,
      // A MemoryRegistry has no KV: no rules followed; no config option: no settings.
      rules: null,
      config: null,
      instance: {
        id: `forum-127.0.0.1-${port}`,
        address: '127.0.0.1',
        port,
        url,
        tags: ['web'],
        meta: { weight: 1, labels: {}, zone: 'zone-1' },
      },
      registration: {
        state: 'running',
        instanceId: `forum-127.0.0.1-${port}`,
        ttlMs: 10_000,
        heartbeatMs: 10_000 / 3,
        registered: true,
        registeredAt: 1_700_000_000_000,
        lastHeartbeatAt: null,
        consecutiveFailures: 0,
        failures: 0,
        reregistrations: 0,
        lastError: null,
      },
      clients: [
        {
          service: 'users',
          strategy: 'round-robin',
          stages: [
            'trace',
            'deadline',
            'retry',
            'hedging',
            'select',
            'trace-attempt',
            'breaker',
            'attempt-timeout',
            'fault-injection',
            'transport',
          ],
          retryBudget: { balance: 100, retryShare: 0.2, minRetriesPerSecond: 10, ttlMs: 10_000 },
          routingRules: {},
          lastRoute: null,
          faultRules: [],
          panic: false,
          discovery: {
            registryReachable: true,
            updatedAt: 1_700_000_000_000,
            panic: false,
            fromFailoverFile: false,
            healthy: 2,
            unhealthy: 0,
          },
          instances: ['a', 'b'].map((name) => ({
            id: `users-${name}`,
            address: '127.0.0.1',
            port: expect.any(Number),
            tags: ['http', hostile],
            meta: { weight: 1, labels: { owner: hostile }, version: '2.1.0' },
            health: 'passing',
            used: true,
            breaker: { state: 'closed', openRemainingMs: 0, calls: 2, failures: 0 },
            // Round robin keeps no per-instance state; the app's own tally has the calls.
            load: null,
            recent: {
              attempts: 2,
              failures: 0,
              outstanding: 0,
              lastLatencyMs: 0,
              lastOutcome: 'success',
              lastStatus: 200,
              lastAt: 1_700_000_000_000,
            },
          })),
          instancesLeftOut: 0,
        },
      ],
    });
    // The same object from code as over HTTP.
    expect(JSON.parse(JSON.stringify(forum.describe()))).toEqual(body);
  });

  it("shows an instance's breaker open once it fails, and the retry budget spent by the retries", async () => {
    const { failing, url } = await system();
    const before = (await status(url)).clients[0];
    expect(before?.retryBudget?.balance).toBe(100);

    failing.a = true;
    // Every call still succeeds: a 503 from users-a is retried on users-b, until a's breaker
    // opens (3 calls, all failed) and round robin skips it.
    for (let i = 0; i < 8; i++) expect((await fetch(`${url}/posts/${i}`)).status).toBe(200);
    const after = (await status(url)).clients[0];
    const [a, b] = after?.instances ?? [];
    expect(a?.id).toBe('users-a');
    expect(a?.breaker).toEqual({ state: 'open', openRemainingMs: 30_000, calls: 0, failures: 0 });
    expect(a?.recent).toMatchObject({ failures: 3, lastOutcome: 'failure', lastStatus: 503 });
    // Discovery still lists it as passing: the registry's health and the caller's breaker differ.
    expect(a?.health).toBe('passing');
    expect(b?.breaker?.state).toBe('closed');
    // 8 calls deposited a fifth of a retry each (1.6); the 3 retries withdrew one each.
    expect(after?.retryBudget?.balance).toBe(98);

    // The breaker's open duration runs on the app's clock.
    clock.advance(12_000);
    expect((await status(url)).clients[0]?.instances[0]?.breaker).toMatchObject({
      state: 'open',
      openRemainingMs: 18_000,
    });
  });

  it('tallies calls from the start beside metrics, and with metrics off only from the first look', async () => {
    const { url } = await system();
    for (const id of ['1', '2']) expect((await fetch(`${url}/posts/${id}`)).status).toBe(200);
    expect((await status(url)).clients[0]?.instances.map((i) => i.recent?.attempts)).toEqual([1, 1]);

    const quiet = app({ service: 'quiet', calls: ['users'], metrics: false, client: { strategy: 'round-robin' } });
    quiet.http.get('/posts/:id', async () => quiet.client('users').get('/users/1'));
    const quietUrl = (await quiet.start()).url;
    expect(quiet.telemetry.enabled).toBe(false);
    expect((await fetch(`${quietUrl}/posts/1`)).status).toBe(200);
    expect((await status(quietUrl)).clients[0]?.instances.map((i) => i.recent)).toEqual([null, null]);
    expect(quiet.telemetry.enabled).toBe(true);
    expect((await fetch(`${quietUrl}/posts/2`)).status).toBe(200);
    expect((await status(quietUrl)).clients[0]?.instances.map((i) => i.recent?.attempts ?? 0)).toEqual([0, 1]);
  });

  it('is off with trellisPage: false, and refuses a value that is not a boolean', async () => {
    const quiet = app({ service: 'quiet', trellisPage: false });
    const { url } = await quiet.start();
    expect((await fetch(`${url}/trellis`)).status).toBe(404);
    expect(() => new TrellisApp({ service: 'x', trellisPage: 'no' as unknown as boolean })).toThrow(ConfigError);
    expect(() => new TrellisApp({ service: 'x', trellisPage: 'no' as unknown as boolean })).toThrow(/trellisPage/);
  });
});
