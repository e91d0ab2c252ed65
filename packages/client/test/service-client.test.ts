import {
  ConfigError,
  ConnectionError,
  filterStage,
  NoInstancesError,
  UpstreamStatusError,
  type Filter,
  type ServiceInstance,
  type TelemetryEvent,
} from '@trellis/core';
import { ServiceClient } from '@trellis/client';
import { CircuitBreakerRegistry, Retry, Timeout } from '@trellis/resilience';
import { Discovery, MemoryRegistry } from '@trellis/registry';
import { deadInstance, startServer, type TestServer } from './http-fixtures.js';

describe('ServiceClient over real HTTP', () => {
  let registry: MemoryRegistry;
  let discovery: Discovery;
  let client: ServiceClient;
  const servers: TestServer[] = [];

  const register = (instance: ServiceInstance): Promise<void> =>
    registry.register({ instance, ttlMs: 60_000, deregisterAfterMs: 60_000 });

  async function serve(...ids: string[]): Promise<TestServer[]> {
    const started = await Promise.all(ids.map((id) => startServer(id)));
    servers.push(...started);
    for (const s of started) await register(s.instance);
    return started;
  }

  beforeEach(() => {
    registry = new MemoryRegistry();
    discovery = new Discovery(registry);
    // Round robin, so that tests know where each call goes.
    client = new ServiceClient({ service: 'users', discovery, strategy: 'round-robin' });
  });
  afterEach(async () => {
    await client.close();
    await discovery.close();
    await registry.close();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('finds the service by name and spreads calls over its instances in turn', async () => {
    await serve('users-1', 'users-2');
    const servedBy: string[] = [];
    for (let i = 0; i < 6; i++) servedBy.push((await client.get<{ servedBy: string }>('/users/1')).servedBy);
    expect(servedBy).toEqual(['users-1', 'users-2', 'users-1', 'users-2', 'users-1', 'users-2']);
  });

  it('sends method, path, headers and a JSON body, and returns status, headers and body', async () => {
    const [server] = await serve('users-1');
    const reply = await client.request({
      method: 'put',
      path: '/users/7?notify=false',
      headers: { 'x-request-id': 'abc' },
      body: { name: 'Ada' },
    });
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('application/json');
    expect(reply.instance.id).toBe('users-1');
    expect(server?.requests).toEqual([{ method: 'PUT', url: '/users/7?notify=false', body: '{"name":"Ada"}' }]);
    await client.post('/users', { name: 'Grace' });
    expect(server?.requests[1]).toEqual({ method: 'POST', url: '/users', body: '{"name":"Grace"}' });
  });

  it('returns an error status as a reply from request(), and throws it from get()', async () => {
    const server = await startServer('users-1', (_req, _body, res) => {
      res.statusCode = 404;
      res.setHeader('content-type', 'application/json');
      res.end('{"error":"no user 9"}');
    });
    servers.push(server);
    await register(server.instance);
    expect((await client.request({ path: '/users/9' })).status).toBe(404);
    const error: unknown = await client.get('/users/9').catch((e: unknown) => e);
    expect(UpstreamStatusError.is(error)).toBe(true);
    expect(error).toMatchObject({ status: 404, body: { error: 'no user 9' }, retryable: false, instance: 'users-1' });
  });

  it('sends a call refused by a stopped instance to a live one', async () => {
    // The live server binds first, so the dead one's released port cannot be handed to it.
    const [live] = await serve('users-live');
    await register(await deadInstance('users-dead'));
    for (let i = 0; i < 4; i++) expect((await client.get<{ servedBy: string }>('/x')).servedBy).toBe('users-live');
    expect(live?.requests).toHaveLength(4);
  });

  it('fails with the connection error once every known instance has refused', async () => {
    await register(await deadInstance('users-a'));
    await register(await deadInstance('users-b'));
    const error: unknown = await client.get('/x').catch((e: unknown) => e);
    expect(ConnectionError.is(error)).toBe(true);
    expect(error).toMatchObject({ code: 'CONNECTION_FAILED', sent: false, service: 'users' });
    expect((error as Error).message).toMatch(/call to service "users" at instance "users-[ab]" failed: .*ECONNREFUSED/);
  });

  it('says which instances it had when failover alone has tried them all', async () => {
    const failoverOnly = new ServiceClient({ service: 'users', discovery, strategy: 'round-robin', retry: false });
    try {
      await register(await deadInstance('users-a'));
      await register(await deadInstance('users-b'));
      const error: unknown = await failoverOnly.get('/x').catch((e: unknown) => e);
      expect(NoInstancesError.is(error)).toBe(true);
      expect((error as Error).message).toBe(
        'no instance of service "users" to call: all 2 known instances failed this call',
      );
    } finally {
      await failoverOnly.close();
    }
  });

  it('throws NoInstancesError when nothing is registered', async () => {
    await expect(client.get('/x')).rejects.toThrow(NoInstancesError);
  });

  it('does not resend a non-idempotent call an instance may have received', async () => {
    const resetting = await startServer('users-reset', (req) => req.socket.destroy());
    servers.push(resetting);
    await register(resetting.instance);
    const [other] = await serve('users-other');
    // Round robin starts with the first id in order: users-other, then users-reset.
    await client.get('/first');
    const error: unknown = await client.post('/orders', { item: 1 }).catch((e: unknown) => e);
    expect(ConnectionError.is(error) && error.sent).toBe(true);
    expect(other?.requests.map((r) => r.url)).toEqual(['/first']);
  });

  it('resends an idempotent call whose connection broke before an answer', async () => {
    const resetting = await startServer('users-reset', (req) => req.socket.destroy());
    servers.push(resetting);
    await register(resetting.instance);
    const [other] = await serve('users-other');
    await client.get('/first');
    expect(await client.get<{ servedBy: string }>('/second')).toEqual({ servedBy: 'users-other' });
    expect(resetting.requests.map((r) => r.url)).toEqual(['/second']);
    expect(other?.requests.map((r) => r.url)).toEqual(['/first', '/second']);
  });

  it('cancels a call when its signal aborts', async () => {
    const hanging = await startServer('users-slow', () => undefined);
    servers.push(hanging);
    await register(hanging.instance);
    const controller = new AbortController();
    const pending = client.get('/slow', { signal: controller.signal });
    await new Promise<void>((resolve) => {
      const check = (): void => (hanging.requests.length > 0 ? resolve() : void setImmediate(check));
      check();
    });
    controller.abort(new Error('caller gave up'));
    await expect(pending).rejects.toThrow('caller gave up');
  });

  it('runs its filters around every call, outermost first', async () => {
    await serve('users-1');
    const log: string[] = [];
    const named =
      (name: string): Filter =>
      async (call, context, next) => {
        log.push(`${name}>`);
        const reply = await next({ ...call, headers: { ...call.headers, [`x-${name}`]: '1' } }, context);
        log.push(`<${name}:${reply.instance.id}`);
        return reply;
      };
    const filtered = new ServiceClient({ service: 'users', discovery, filters: [named('a'), named('b')] });
    try {
      await filtered.get('/users/1');
      expect(log).toEqual(['a>', 'b>', '<b:users-1', '<a:users-1']);
    } finally {
      await filtered.close();
    }
  });

  it('runs a stage inserted after "attempt-timeout" once per attempt, each seeing the instance chosen for it in the context', async () => {
    const live = await startServer('users-1', (req, _body, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ attemptOn: req.headers['x-attempt-on'] }));
    });
    servers.push(live);
    await register(live.instance);
    await register(await deadInstance('users-dead'));
    const seen: string[] = [];
    const signals: Array<boolean | undefined> = [];
    const stamp: Filter = (call, context, next) => {
      const id = context.instance?.id ?? '';
      seen.push(id);
      // A plain spread: the signal travels in the context, not on the call.
      signals.push(context.signal?.aborted);
      return next({ ...call, headers: { ...call.headers, 'x-attempt-on': id } }, context);
    };
    const filtered = new ServiceClient({
      service: 'users',
      discovery,
      strategy: 'round-robin',
      stack: (stack) => stack.insertAfter('attempt-timeout', filterStage('stamp', stamp, 'attempt')),
    });
    try {
      // Round robin starts on the first registered; the dead one refuses and failover tries the other.
      const answers = [await filtered.get('/users/1'), await filtered.get('/users/1')];
      expect(seen).toEqual(['users-1', 'users-dead', 'users-1']);
      expect(answers).toEqual([{ attemptOn: 'users-1' }, { attemptOn: 'users-1' }]);
      expect(signals).toEqual([false, false, false]);
    } finally {
      await filtered.close();
    }
  });

  it('ejects an instance whose breaker opened: its calls go elsewhere and it gets no more', async () => {
    const failing = await startServer('users-bad', (_req, _body, res) => {
      res.statusCode = 503;
      res.end('{"error":"overloaded"}');
    });
    const [good] = await serve('users-good');
    servers.push(failing);
    await register(failing.instance);
    const breakers = new CircuitBreakerRegistry({ minimumCalls: 4, failureRateThreshold: 0.5 });
    const governed = new ServiceClient({
      service: 'users',
      discovery,
      strategy: 'round-robin',
      breakers,
      retry: { random: () => 0 },
    });
    try {
      // Every call succeeds: a 503 is retried on the other instance.
      for (let i = 0; i < 20; i++) expect(await governed.get('/users/1')).toEqual({ servedBy: 'users-good' });
      // Its breaker opened after its fourth failure; from then on it was skipped.
      expect(failing.requests).toHaveLength(4);
      expect(breakers.isEjected(failing.instance)).toBe(true);
      expect(good?.requests).toHaveLength(20);
    } finally {
      await governed.close();
      await breakers.close();
    }
  });

  it('describes itself: strategy, stages, retry budget spent by retries, breaker states, scores, rules and faults', async () => {
    const failing = await startServer('users-bad', (_req, _body, res) => {
      res.statusCode = 503;
      res.end('{"error":"overloaded"}');
    });
    const [good] = await serve('users-good');
    servers.push(failing);
    await register(failing.instance);
    const breakers = new CircuitBreakerRegistry({ minimumCalls: 4, failureRateThreshold: 0.5 });
    const faults = [{ name: 'slow-admin', match: { path: { prefix: '/admin' } }, delay: { share: 0.5, ms: 100 } }];
    const governed = new ServiceClient({
      service: 'users',
      discovery,
      // Idle instances taken in turn, as round robin, and a score to show.
      strategy: 'least-outstanding',
      breakers,
      faults,
      rules: { default: { to: { labels: {} } } },
      retry: { random: () => 0 },
    });
    const instances = (): Promise<readonly ServiceInstance[]> => discovery.instances('users');
    try {
      const before = governed.describe(await instances());
      expect(before).toMatchObject({
        service: 'users',
        strategy: 'least-outstanding',
        stages: [
          'deadline',
          'retry',
          'hedging',
          'select',
          'breaker',
          'attempt-timeout',
          'fault-injection',
          'transport',
        ],
        retryBudget: { balance: 100, retryShare: 0.2, minRetriesPerSecond: 10, ttlMs: 10_000 },
        faultRules: faults,
        panic: false,
        instancesLeftOut: 0,
      });
      expect(before.routingRules).toEqual({ default: { to: { labels: {} } } });
      // Never called: no breaker, no load yet.
      expect(before.instances).toEqual([
        { id: 'users-bad', breaker: undefined, load: undefined },
        { id: 'users-good', breaker: undefined, load: undefined },
      ]);

      for (let i = 0; i < 20; i++) expect(await governed.get('/users/1')).toEqual({ servedBy: 'users-good' });
      const after = governed.describe(await instances());
      const retries = failing.requests.length;
      expect(retries).toBe(4);
      // 20 calls deposit a fifth of a retry each; every retry withdrew one.
      expect(after.retryBudget?.balance).toBe(100 + Math.floor(20 * 0.2) - retries);
      expect(after.lastRoute).toBe('default');
      const [bad, ok] = after.instances;
      expect(bad?.breaker).toMatchObject({ state: 'open', openRemainingMs: expect.any(Number) });
      expect(ok?.breaker).toMatchObject({ state: 'closed', calls: 20, failures: 0 });
      expect(ok?.load).toEqual({ score: 0, outstanding: 0 });
      expect(good?.requests).toHaveLength(20);
      // The list asked about is capped, and what was left out is counted.
      const many = Array.from({ length: 250 }, (_, i) => ({ ...failing.instance, id: `users-${i}` }));
      const capped = governed.describe(many);
      expect(capped.instances).toHaveLength(200);
      expect(capped.instancesLeftOut).toBe(50);
      expect(breakers.find('users-7')).toBeUndefined();
    } finally {
      await governed.close();
      await breakers.close();
    }
  });

  it('keeps an instance isolated by hand out of rotation, telling its telemetry, until released', async () => {
    const [one] = await serve('users-1', 'users-2');
    const changes: string[] = [];
    client.onEvent((e: TelemetryEvent) => {
      if (e.type === 'circuit-state-changed') changes.push(`${e.instance} ${e.from}->${e.to}`);
    });
    const isolation = client.breakers?.get('users', 'users-1').isolate();
    for (let i = 0; i < 4; i++) expect(await client.get('/users/1')).toEqual({ servedBy: 'users-2' });
    expect(one?.requests).toHaveLength(0);
    isolation?.dispose();
    const servedBy = new Set<string>();
    for (let i = 0; i < 4; i++) servedBy.add((await client.get<{ servedBy: string }>('/users/1')).servedBy);
    expect(servedBy).toEqual(new Set(['users-1', 'users-2']));
    expect(changes).toEqual(['users-1 closed->isolated', 'users-1 isolated->closed']);
  });

  it('routes calls by its rules, and says so when a route matches no instance', async () => {
    const v1 = await startServer('users-v1');
    const v2 = await startServer('users-v2');
    servers.push(v1, v2);
    await register({ ...v1.instance, meta: { ...v1.instance.meta, version: 'v1' } });
    await register({ ...v2.instance, meta: { ...v2.instance.meta, version: 'v2' } });
    const routed = new ServiceClient({
      service: 'users',
      discovery,
      caller: 'forum',
      rules: {
        routes: [
          { name: 'testers', match: { headers: { 'x-canary': { exact: 'always' } } }, to: { version: 'v2' } },
          { name: 'nowhere', match: { path: { prefix: '/v3/' } }, to: { version: 'v3' } },
        ],
        default: { to: { version: 'v1' } },
      },
    });
    try {
      const canary = { headers: { 'x-canary': 'always' } };
      for (let i = 0; i < 3; i++) {
        expect(await routed.get('/users/1', canary)).toEqual({ servedBy: 'users-v2' });
        expect(await routed.get('/users/1')).toEqual({ servedBy: 'users-v1' });
      }
      const error: unknown = await routed.get('/v3/users/1').catch((e: unknown) => e);
      expect(NoInstancesError.is(error)).toBe(true);
      expect((error as Error).message).toContain("none of the 2 known instances matches the call's route");
    } finally {
      await routed.close();
    }
  });

  it('is one stack of named stages, which refuses a second retry, breaker or timeout added by hand', async () => {
    expect(client.stages).toEqual([
      'deadline',
      'retry',
      'hedging',
      'select',
      'breaker',
      'attempt-timeout',
      'fault-injection',
      'transport',
    ]);
    const refused = (make: () => unknown): string | undefined => {
      try {
        make();
      } catch (error) {
        return ConfigError.is(error) ? error.field : 'not a ConfigError';
      }
      return undefined;
    };
    expect(refused(() => new ServiceClient({ service: 'users', discovery, filters: [new Retry()] }))).toBe(
      'stack.retry',
    );
    expect(
      refused(
        () =>
          new ServiceClient({
            service: 'users',
            discovery,
            stack: (s) => s.insertAfter('select', new Timeout({ timeoutMs: 50 })),
          }),
      ),
    ).toBe('stack.attempt-timeout');
    const breakers = new CircuitBreakerRegistry();
    expect(
      refused(
        () =>
          new ServiceClient({
            service: 'users',
            discovery,
            stack: (s) =>
              s.insertBefore('transport', { ...filterStage('breaker-2', (c, x, n) => n(c, x)), role: 'breaker' }),
          }),
      ),
    ).toBe('stack.breaker');
    await breakers.close();
    // Replacing the built-in one is the way to have another.
    const replaced = new ServiceClient({
      service: 'users',
      discovery,
      stack: (s) => s.replace('retry', new Retry({ maxAttempts: 5 })).remove('hedging'),
    });
    expect(replaced.stages).not.toContain('hedging');
    void replaced.close();
  });

  it('offers get, head, post, put, patch, delete and request, with per-call headers, timeout, retry off and idempotency', async () => {
    const echo = await startServer('users-1', (req, body, res) => {
      res.setHeader('content-type', 'application/json');
      res.setHeader('x-method', req.method ?? '');
      res.end(
        req.method === 'HEAD'
          ? undefined
          : JSON.stringify({
              method: req.method,
              body: body === '' ? null : JSON.parse(body),
              timeout: req.headers['x-trellis-timeout-ms'] ?? null,
            }),
      );
    });
    servers.push(echo);
    await register(echo.instance);
    interface Echo {
      readonly method: string;
      readonly body: unknown;
      readonly timeout: string | null;
    }
    expect(await client.get<Echo>('/users/1')).toEqual({ method: 'GET', body: null, timeout: null });
    expect(await client.post<Echo, { name: string }>('/users', { name: 'Ada' })).toMatchObject({
      method: 'POST',
      body: { name: 'Ada' },
    });
    expect(await client.put<Echo>('/users/1', { name: 'Ada' })).toMatchObject({ method: 'PUT' });
    expect(await client.patch<Echo>('/users/1', { name: 'Grace' })).toMatchObject({
      method: 'PATCH',
      body: { name: 'Grace' },
    });
    expect(await client.delete<Echo>('/users/1')).toMatchObject({ method: 'DELETE' });
    expect((await client.head('/users/1'))['x-method']).toBe('HEAD');
    const timed = await client.get<Echo>('/users/1', { timeoutMs: 5_000 });
    // The remaining time travels with the request, in whole milliseconds.
    expect(Number(timed.timeout)).toBeGreaterThan(4_000);
    expect(Number(timed.timeout)).toBeLessThanOrEqual(5_000);
    await expect(client.get('/users/1', { timeoutMs: -1 })).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
      field: 'timeoutMs',
    });
  });

  it('makes one attempt for a call with retry: false, and retries a POST marked idempotent', async () => {
    let calls = 0;
    const flaky = await startServer('users-1', (_req, _body, res) => {
      calls++;
      res.statusCode = calls <= 2 ? 503 : 200;
      res.setHeader('content-type', 'application/json');
      res.end('{}');
    });
    servers.push(flaky);
    await register(flaky.instance);
    const reply = await client.request({ path: '/users/1', retry: false });
    expect(reply.status).toBe(503);
    expect(calls).toBe(1);
    await expect(client.post('/users', {}, { idempotent: true })).resolves.toEqual({});
    expect(calls).toBe(3);
  });

  it('reports every decision to its telemetry: the pick and why, the attempt, the retry', async () => {
    const failing = await startServer('users-bad', (_req, _body, res) => {
      res.statusCode = 503;
      res.end('{}');
    });
    servers.push(failing);
    await register(failing.instance);
    await serve('users-good');
    const events: TelemetryEvent[] = [];
    const observed = new ServiceClient({
      service: 'users',
      discovery,
      strategy: 'round-robin',
      retry: { random: () => 0 },
    });
    observed.onEvent((e) => events.push(e));
    // A listener that throws is logged and ignored: the call goes on.
    observed.onEvent(() => {
      throw new Error('a bug in a metrics listener');
    });
    const original = console.error;
    console.error = () => undefined;
    try {
      expect(await observed.get('/users/1')).toEqual({ servedBy: 'users-good' });
    } finally {
      console.error = original;
      await observed.close();
    }
    expect(events.map((e) => e.type)).toEqual([
      'instance-picked',
      'attempt-started',
      'attempt-ended',
      'retry-scheduled',
      'instance-picked',
      'attempt-started',
      'attempt-ended',
    ]);
    expect(events[0]).toMatchObject({
      instance: 'users-bad',
      attempt: 1,
      strategy: 'round-robin',
      route: undefined,
      panic: false,
    });
    expect(events[2]).toMatchObject({ outcome: 'failure', status: 503, attempt: 1 });
    expect(events[3]).toMatchObject({ reason: 'HTTP 503', instance: 'users-bad' });
    expect(events[6]).toMatchObject({ instance: 'users-good', outcome: 'success', status: 200, attempt: 2 });
  });
});
