import type http from 'node:http';
import { ConfigError, filterStage, ManualClock, type ServiceInstance, type TelemetryEvent } from '@trellis/core';
import { ServiceClient, type ClientRules } from '@trellis/client';
import { RoundRobin } from '@trellis/loadbalancer';
import { CircuitBreakerRegistry, Retry } from '@trellis/resilience';
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

/** A server that holds every request until `release()`, and says when it holds `n`. */
async function holdingServer(id: string): Promise<{
  server: TestServer;
  held: (n: number) => Promise<void>;
  release: () => void;
}> {
  const waiting: http.ServerResponse[] = [];
  const server = await startServer(id, (_req, _body, res) => {
    waiting.push(res);
  });
  return {
    server,
    held: async (n) => {
      // Bounded: the requests are on their way over loopback.
      for (let i = 0; i < 2_000 && waiting.length < n; i++) await new Promise((r) => setTimeout(r, 5));
      if (waiting.length < n) throw new Error(`${id} holds ${waiting.length} requests, not ${n}`);
    },
    release: () => {
      for (const res of waiting.splice(0)) {
        if (res.destroyed) continue;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ servedBy: id }));
      }
    },
  };
}

describe('ServiceClient.applyRules: rules change the running stack', () => {
  let registry: MemoryRegistry;
  let discovery: Discovery;
  const servers: TestServer[] = [];
  const clients: ServiceClient[] = [];

  const register = (instance: ServiceInstance): Promise<void> =>
    registry.register({ instance, ttlMs: 60_000, deregisterAfterMs: 60_000 });
  const client = (options: Omit<ConstructorParameters<typeof ServiceClient>[0], 'service' | 'discovery'>) => {
    const made = new ServiceClient({ service: 'users', discovery, ...options });
    clients.push(made);
    return made;
  };
  async function serve(id: string, version?: string, handler?: Parameters<typeof startServer>[1]): Promise<TestServer> {
    const server = await startServer(id, handler);
    servers.push(server);
    const meta = version === undefined ? server.instance.meta : { ...server.instance.meta, version };
    await register({ ...server.instance, meta });
    return server;
  }
  const failing = (_req: http.IncomingMessage, _body: string, res: http.ServerResponse): void => {
    res.statusCode = 503;
    res.end('{"error":"overloaded"}');
  };
  const servedBy = async (users: ServiceClient, n: number): Promise<string[]> => {
    const seen: string[] = [];
    for (let i = 0; i < n; i++)
      seen.push((await users.request<{ servedBy: string }>({ path: '/users/1' })).instance.id);
    return seen;
  };

  beforeEach(() => {
    registry = new MemoryRegistry();
    discovery = new Discovery(registry);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await discovery.close();
    await registry.close();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('routes the next calls by routing rules applied live, and back to every instance after applyRules({})', async () => {
    await serve('users-v1', 'v1');
    await serve('users-v2', 'v2');
    const users = client({ strategy: 'round-robin' });
    expect(new Set(await servedBy(users, 4))).toEqual(new Set(['users-v1', 'users-v2']));
    users.applyRules({ routing: { default: { to: { version: 'v2' } } } }, 3);
    expect(await servedBy(users, 4)).toEqual(['users-v2', 'users-v2', 'users-v2', 'users-v2']);
    expect(users.describe()).toMatchObject({ rulesVersion: 3, lastRoute: 'default' });
    users.applyRules({});
    expect(new Set(await servedBy(users, 4))).toEqual(new Set(['users-v1', 'users-v2']));
    expect(users.describe()).toMatchObject({ routingRules: {}, rules: {}, rulesVersion: undefined });
  });

  it('moves a canary split applied live from 0 to about 50% of the calls', async () => {
    await serve('users-v1', 'v1');
    await serve('users-v2', 'v2');
    // The code sends everything to v1; the rules then split it 50/50, drawn from a fixed sequence.
    const users = client({
      strategy: 'round-robin',
      random: seeded(16),
      rules: { default: { to: { version: 'v1' } } },
    });
    const share = async (): Promise<number> =>
      (await servedBy(users, 200)).filter((id) => id === 'users-v2').length / 200;
    expect(await share()).toBe(0);
    const split = (v2: number): ClientRules => ({
      routing: {
        default: {
          split: [
            { subset: { version: 'v1' }, weight: 100 - v2 },
            { subset: { version: 'v2' }, weight: v2 },
          ],
        },
      },
    });
    users.applyRules(split(50), 1);
    // 200 draws of a fair coin: within 0.5 ± 0.1 (more than 2.8 standard deviations).
    const half = await share();
    expect(half).toBeGreaterThan(0.4);
    expect(half).toBeLessThan(0.6);
    // Rolled back: the code's rules again.
    users.applyRules({}, 2);
    expect(await share()).toBe(0);
  });

  it('picks by a strategy named live, keeping the routing rules and the instances ejected by their breakers', async () => {
    await serve('users-1', 'v1');
    await serve('users-2', 'v1');
    await serve('users-3', 'v1');
    await serve('users-4', 'v2');
    // "random" with a source that always draws 0: every call goes to the first routed instance.
    const users = client({ strategy: 'random', random: () => 0, rules: { default: { to: { version: 'v1' } } } });
    expect(await servedBy(users, 3)).toEqual(['users-1', 'users-1', 'users-1']);
    const isolation = users.breakers?.get('users', 'users-2').isolate();
    users.applyRules({ strategy: 'round-robin' });
    expect(users.describe().strategy).toBe('round-robin');
    // v2 stays out (routing), users-2 stays out (ejected): round robin over users-1 and users-3.
    expect(await servedBy(users, 4)).toEqual(['users-1', 'users-3', 'users-1', 'users-3']);
    isolation?.dispose();
    users.applyRules({});
    expect(users.describe().strategy).toBe('random');
    expect(await servedBy(users, 2)).toEqual(['users-1', 'users-1']);
  });

  it('retries by the retry rules applied live: no retry with maxAttempts 1, failover only with false, none with a spent budget', async () => {
    const bad = await serve('users-bad', undefined, failing);
    await serve('users-good');
    const users = client({ strategy: 'round-robin', retry: { random: () => 0 }, breakers: false });
    // Round robin starts on users-bad: its 503 is retried on users-good.
    expect((await users.request({ path: '/a' })).status).toBe(200);
    expect((await users.request({ path: '/b' })).status).toBe(200);
    expect(bad.requests).toHaveLength(1);

    users.applyRules({ retry: { maxAttempts: 1 } });
    const statuses = [(await users.request({ path: '/c' })).status, (await users.request({ path: '/d' })).status];
    expect(statuses.sort()).toEqual([200, 503]);
    expect(users.describe().retryBudget).toMatchObject({ retryShare: 0.2, minRetriesPerSecond: 10 });

    users.applyRules({ retry: false });
    expect(users.describe().retryBudget).toBeUndefined();
    const failover = [(await users.request({ path: '/e' })).status, (await users.request({ path: '/f' })).status];
    expect(failover.sort()).toEqual([200, 503]);

    users.applyRules({ retry: { budget: { retryShare: 0, minRetriesPerSecond: 0 } } });
    expect(users.describe().retryBudget).toMatchObject({ balance: 0, retryShare: 0, minRetriesPerSecond: 0 });
    const budgeted = [(await users.request({ path: '/g' })).status, (await users.request({ path: '/h' })).status];
    expect(budgeted.sort()).toEqual([200, 503]);

    users.applyRules({});
    expect(users.describe().retryBudget).toMatchObject({ retryShare: 0.2, minRetriesPerSecond: 10, ttlMs: 10_000 });
    for (const path of ['/i', '/j']) expect((await users.request({ path })).status).toBe(200);
  });

  it('keeps a retry budget and its balance when the same rules are applied again', async () => {
    await serve('users-1');
    const users = client({});
    users.applyRules({ retry: { budget: { retryShare: 0.5 } } }, 1);
    for (let i = 0; i < 10; i++) await users.get('/users/1');
    const balance = users.describe().retryBudget?.balance;
    expect(balance).toBe(100 + 5);
    users.applyRules({ retry: { budget: { retryShare: 0.5 } } }, 2);
    expect(users.describe().retryBudget?.balance).toBe(balance);
  });

  it('holds the next attempt to an attempt timeout applied live, while a call in flight keeps the limit it started with', async () => {
    const clock = new ManualClock();
    const slow = await holdingServer('users-slow');
    servers.push(slow.server);
    await register(slow.server.instance);
    const users = client({ clock, retry: false });
    const first = users.request<{ servedBy: string }>({ path: '/first' });
    await slow.held(1);
    users.applyRules({ attemptTimeoutMs: 100 });
    const second = users.request({ path: '/second' }).catch((e: unknown) => e);
    await slow.held(2);
    await clock.advanceAsync(100);
    expect(await second).toMatchObject({ code: 'TIMEOUT', scope: 'attempt', timeoutMs: 100 });
    // The first call is still on its 10 s: it completes when the server answers.
    slow.release();
    expect(await first).toMatchObject({ status: 200, body: { servedBy: 'users-slow' } });
  });

  it('ends the next call at a deadline applied live, and none after it is removed', async () => {
    const clock = new ManualClock();
    const slow = await holdingServer('users-slow');
    servers.push(slow.server);
    await register(slow.server.instance);
    const users = client({ clock, retry: false });
    users.applyRules({ deadlineMs: 250 });
    const call = users.request({ path: '/x' }).catch((e: unknown) => e);
    await slow.held(1);
    await clock.advanceAsync(250);
    expect(await call).toMatchObject({ code: 'TIMEOUT', scope: 'deadline' });
    users.applyRules({ deadlineMs: false });
    const free = users.request<{ servedBy: string }>({ path: '/y' });
    await slow.held(2);
    await clock.advanceAsync(5_000);
    slow.release();
    expect((await free).status).toBe(200);
  });

  it('hedges a slow call once hedging is switched on live, and stops when the rules are removed', async () => {
    const clock = new ManualClock();
    const slow = await holdingServer('users-1-slow');
    servers.push(slow.server);
    await register(slow.server.instance);
    await serve('users-2-fast');
    const users = client({ clock, strategy: 'round-robin' });
    const events: TelemetryEvent[] = [];
    users.onEvent((e) => events.push(e));
    users.applyRules({ hedging: { delayMs: 50 } });
    // Round robin sends the first attempt to users-1-slow; after 50 ms the hedge goes to users-2-fast.
    const hedged = users.get<{ servedBy: string }>('/users/1');
    await slow.held(1);
    await clock.advanceAsync(50);
    expect(await hedged).toEqual({ servedBy: 'users-2-fast' });
    expect(events.filter((e) => e.type === 'hedge-sent')).toHaveLength(1);
    users.applyRules({});
    // Without hedging, a call to users-1-slow waits for it.
    await users.get('/users/2'); // users-2-fast, round robin's turn
    const waited = users.get<{ servedBy: string }>('/users/3');
    await slow.held(2);
    await clock.advanceAsync(1_000);
    slow.release();
    expect(await waited).toEqual({ servedBy: 'users-1-slow' });
    expect(events.filter((e) => e.type === 'hedge-sent')).toHaveLength(1);
  });

  it('gives existing breakers the thresholds applied live, for this service only, and their own back after applyRules({})', async () => {
    const bad = await serve('users-bad', undefined, failing);
    const breakers = new CircuitBreakerRegistry({ minimumCalls: 20 });
    try {
      const users = client({ breakers, retry: false });
      const other = breakers.get('orders', 'orders-1');
      expect((await users.request({ path: '/1' })).status).toBe(503);
      const breaker = breakers.find('users-bad');
      expect(breaker?.state).toBe('closed');
      users.applyRules({ breaker: { minimumCalls: 2, failureRateThreshold: 0.5 } });
      expect(breakers.policy('users')).toMatchObject({ minimumCalls: 2, failureRateThreshold: 0.5 });
      expect(breakers.policy('orders')).toMatchObject({ minimumCalls: 20 });
      // The second failure, counted with the first, reaches the new threshold.
      expect((await users.request({ path: '/2' })).status).toBe(503);
      expect(breaker?.state).toBe('open');
      expect(bad.requests).toHaveLength(2);
      expect(other.state).toBe('closed');
      users.applyRules({});
      expect(breakers.policy('users')).toMatchObject({ minimumCalls: 20 });
    } finally {
      await breakers.close();
    }
  });

  it('injects faults applied live into a client built without any, and none after applyRules({})', async () => {
    const server = await serve('users-1');
    const users = client({ retry: false });
    expect(users.describe().faultRules).toEqual([]);
    users.applyRules({ faults: [{ name: 'outage', abort: { share: 1, status: 503 } }] });
    const reply = await users.request({ path: '/users/1' });
    expect(reply).toMatchObject({ status: 503, headers: { 'x-trellis-fault': 'abort' } });
    expect(server.requests).toHaveLength(0);
    users.applyRules({});
    expect((await users.request({ path: '/users/1' })).status).toBe(200);
    expect(server.requests).toHaveLength(1);
  });

  it('lets a call in flight across a change of every field complete as it started', async () => {
    const clock = new ManualClock();
    const slow = await holdingServer('users-v1');
    servers.push(slow.server);
    await register({ ...slow.server.instance, meta: { ...slow.server.instance.meta, version: 'v1' } });
    await serve('users-v2', 'v2');
    const users = client({ clock, strategy: 'round-robin', rules: { default: { to: { version: 'v1' } } } });
    const inFlight = users.request<{ servedBy: string }>({ path: '/users/1' });
    await slow.held(1);
    users.applyRules({
      strategy: 'least-outstanding',
      routing: { default: { to: { version: 'v2' } } },
      retry: { maxAttempts: 1 },
      attemptTimeoutMs: 10,
      deadlineMs: 20,
      hedging: { delayMs: 5 },
      breaker: { minimumCalls: 1 },
      faults: [{ abort: { share: 1, status: 500 }, match: { path: { prefix: '/other' } } }],
    });
    await clock.advanceAsync(1_000);
    slow.release();
    expect(await inFlight).toMatchObject({ status: 200, body: { servedBy: 'users-v1' } });
    // The next call takes the new rules.
    expect((await users.request<{ servedBy: string }>({ path: '/users/2' })).body).toEqual({ servedBy: 'users-v2' });
  });

  it('restores what the client was built with after applyRules({})', async () => {
    await serve('users-1');
    const users = client({
      strategy: 'least-outstanding',
      rules: { default: { to: { tags: [] } } },
      retry: { maxAttempts: 2, budget: false },
      faults: [{ name: 'slow', match: { path: { prefix: '/admin' } }, delay: { share: 0.5, ms: 100 } }],
    });
    await users.get('/users/1');
    const before = users.describe();
    users.applyRules({
      strategy: 'round-robin',
      routing: {},
      retry: { maxAttempts: 5, budget: { retryShare: 0.1 } },
      attemptTimeoutMs: 5,
      faults: [],
    });
    expect(users.describe()).toMatchObject({ strategy: 'round-robin', routingRules: {}, faultRules: [] });
    users.applyRules({});
    const { rules, ...after } = users.describe();
    const { rules: none, ...built } = before;
    expect(after).toEqual(built);
    expect([rules, none]).toEqual([{}, undefined]);
  });

  it('reports rules applied to its telemetry, with their version and fields', async () => {
    const users = client({});
    const events: TelemetryEvent[] = [];
    users.onEvent((e) => events.push(e));
    users.applyRules({ faults: [], retry: { maxAttempts: 2 } }, 12);
    users.applyRules({});
    expect(events).toEqual([
      { type: 'rules-applied', service: 'users', version: 12, fields: ['retry', 'faults'] },
      { type: 'rules-applied', service: 'users', version: undefined, fields: [] },
    ]);
  });

  it('refuses a field this client cannot apply, naming it, and changes nothing', async () => {
    await serve('users-1');
    const own = client({ strategy: new RoundRobin() });
    const all: ClientRules = { retry: { maxAttempts: 1 }, faults: [{ abort: { share: 1, status: 503 } }] };
    expect(refusal(() => own.applyRules({ ...all, strategy: 'random' })).field).toBe('strategy');
    expect(refusal(() => own.applyRules({ ...all, routing: {} })).field).toBe('routing');
    const noBreakers = client({ breakers: false });
    expect(refusal(() => noBreakers.applyRules({ ...all, breaker: { minimumCalls: 1 } })).field).toBe('breaker');
    const edited = client({
      stack: (s) =>
        s
          .replace('retry', new Retry({ maxAttempts: 2 }))
          .remove('hedging')
          .replace(
            'fault-injection',
            filterStage('chaos', (c, x, n) => n(c, x), 'attempt'),
          ),
    });
    expect(refusal(() => edited.applyRules({ retry: false })).field).toBe('retry');
    expect(refusal(() => edited.applyRules({ hedging: { delayMs: 10 } })).field).toBe('hedging');
    expect(refusal(() => edited.applyRules({ faults: [] })).field).toBe('faults');
    expect(refusal(() => noBreakers.applyRules({ strategy: 'zone-aware' })).field).toBe('strategy');
    // Nothing changed: calls are answered, the rules in force are none.
    for (const users of [own, noBreakers, edited]) {
      expect((await users.request({ path: '/users/1' })).status).toBe(200);
      expect(users.describe()).toMatchObject({ rules: undefined, faultRules: [] });
    }
    // A combination only the client's own options make invalid is refused before anything changes.
    const breakers = new CircuitBreakerRegistry({ resetTimeoutMs: 60_000 });
    try {
      const users = client({ breakers });
      const error = refusal(() => users.applyRules({ ...all, breaker: { backoffMaxMs: 1_000 } }));
      expect(error.field).toBe('breaker.backoffMaxMs');
      expect((await users.request({ path: '/users/1' })).status).toBe(200);
      expect(users.describe().faultRules).toEqual([]);
      const retry = refusal(() => users.applyRules({ retry: { backoffBaseMs: 1_000 } }));
      expect(retry.field).toBe('retry.backoffMaxMs');
    } finally {
      await breakers.close();
    }
  });

  it('refuses an invalid field with its dotted path, and changes nothing', async () => {
    await serve('users-1');
    const users = client({});
    const field = (rules: unknown): string => refusal(() => users.applyRules(rules as ClientRules)).field;
    expect(field({ retry: { budget: { retryShare: 1.5 } } })).toBe('retry.budget.retryShare');
    expect(
      field({
        routing: {
          default: {
            split: [
              { subset: { version: 'v1' }, weight: 1 },
              { subset: { version: 'v2' }, weight: -1 },
            ],
          },
        },
      }),
    ).toBe('routing.default.split[1].weight');
    expect(field({ retry: { maxAtempts: 2 } })).toBe('retry.maxAtempts');
    expect(field({ timeoutMs: 2 })).toBe('timeoutMs');
    expect(field({ attemptTimeoutMs: 0 })).toBe('attemptTimeoutMs');
    expect(field({ faults: [{ abort: { share: 1, status: 200 } }] })).toBe('faults[0].abort.status');
    expect(users.describe().rules).toBeUndefined();
    expect(ConfigError.is(refusal(() => users.applyRules({}, -1)))).toBe(true);
  });
});
