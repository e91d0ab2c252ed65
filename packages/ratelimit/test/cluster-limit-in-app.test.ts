import 'reflect-metadata';
import { Controller, Get, RateLimit as RateLimited, TrellisApp } from '@trellis/app';
import { ServiceClient } from '@trellis/client';
import { Discovery, MemoryRegistry } from '@trellis/registry';
import { ClusterRateLimiter } from '@trellis/ratelimit';
import { PerKey, RateLimit, RateLimitedError } from '@trellis/resilience';
import { startRedis, type RunningRedis } from './redis-server.js';

// A cluster limit plugged into the places a local one goes: an app's inbound rate, a
// controller's @RateLimit, a ServiceClient's filter, a RateLimit policy; the answers are the local limits' own.

let redis: RunningRedis;
const closing: Array<() => Promise<void>> = [];
let n = 0;

beforeAll(async () => {
  redis = await startRedis();
});

afterEach(async () => {
  for (const close of closing.splice(0).reverse()) await close();
});

afterAll(async () => {
  await redis.stop();
});

function shared(limit: number, redisUrl = redis.url): ClusterRateLimiter {
  const limiter = new ClusterRateLimiter({
    name: `in-app-${process.pid}-${n++}`,
    limit,
    windowMs: 60_000,
    redis: redisUrl,
    budgetMs: 200,
    probeIntervalMs: 20,
    logger: false,
  });
  closing.push(() => limiter.close());
  return limiter;
}

async function started(app: TrellisApp): Promise<string> {
  closing.push(() => app.close());
  return (await app.start()).url;
}

const quiet = { registry: new MemoryRegistry(), logLevel: 'silent', drainMs: 0, trellisPage: false } as const;

describe('a cluster rate limit in an app and a policy', () => {
  it('answers 429 with Retry-After as an inbound rate once the shared limit is spent', async () => {
    const limiter = shared(2);
    await limiter.ready();
    const app = new TrellisApp({ service: 'search', ...quiet, registry: new MemoryRegistry() });
    app.limitInbound({ rate: limiter });
    app.http.get('/search', async () => ({ found: [] }));
    const url = await started(app);
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await fetch(`${url}/search`)).status);
    expect(statuses).toEqual([200, 200, 429]);
    const refused = await fetch(`${url}/search`);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await refused.json()).toMatchObject({ error: 'RATE_LIMITED' });
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });

  it('answers 429 from a controller method with @RateLimit({ limiter })', async () => {
    const limiter = shared(1);
    await limiter.ready();
    @Controller('/search')
    class SearchController {
      @Get()
      @RateLimited({ limiter })
      find(): string[] {
        return [];
      }
    }
    const app = new TrellisApp({
      service: 'search',
      ...quiet,
      registry: new MemoryRegistry(),
      controllers: [SearchController],
    });
    const url = await started(app);
    expect((await fetch(`${url}/search`)).status).toBe(200);
    const refused = await fetch(`${url}/search`);
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ error: 'RATE_LIMITED' });
  });

  it('refuses calls past the shared limit as a ServiceClient filter, before they are sent', async () => {
    const limiter = shared(2);
    await limiter.ready();
    const registry = new MemoryRegistry();
    const users = new TrellisApp({ service: 'users', ...quiet, registry });
    let served = 0;
    users.http.get('/users/1', async () => ({ id: 1, served: ++served }));
    await started(users);
    const discovery = new Discovery(registry);
    const client = new ServiceClient({ service: 'users', discovery, filters: [new RateLimit(limiter)], retry: false });
    closing.push(async () => {
      await client.close();
      await discovery.close();
    });
    expect(await client.get('/users/1')).toEqual({ id: 1, served: 1 });
    expect(await client.get('/users/1')).toEqual({ id: 1, served: 2 });
    const error: unknown = await client.get('/users/1').catch((e: unknown) => e);
    expect(RateLimitedError.is(error)).toBe(true);
    expect(served).toBe(2);
  });

  it('refuses with RateLimitedError as a RateLimit policy', async () => {
    const limiter = shared(1);
    await limiter.ready();
    const policy = new RateLimit(limiter, { name: 'search' });
    expect(await policy.execute(async () => 'ok')).toBe('ok');
    const error: unknown = await policy.execute(async () => 'ok').catch((e: unknown) => e);
    expect(RateLimitedError.is(error)).toBe(true);
    expect(error).toMatchObject({ code: 'RATE_LIMITED', scope: '"search"' });
  });

  it("shows its fallback on the app's /metrics when Redis is away", async () => {
    const away = await startRedis();
    await away.kill();
    closing.push(() => away.stop());
    const limiter = shared(10, away.url);
    const app = new TrellisApp({ service: 'search', ...quiet, registry: new MemoryRegistry() });
    app.limitInbound({ rate: limiter });
    app.http.get('/search', async () => ({ found: [] }));
    const url = await started(app);
    // Served from the local share (the whole limit: this instance is the only one discovery knows).
    expect((await fetch(`${url}/search`)).status).toBe(200);
    let text = '';
    for (let i = 0; i < 100 && !text.includes(`trellis_ratelimit_fallback{limit="${limiter.name}"} 1`); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      text = await (await fetch(`${url}/metrics`)).text();
    }
    expect(text).toContain(`trellis_ratelimit_fallback{limit="${limiter.name}"} 1`);
    expect(limiter.share).toBe(10);
  });

  it('takes over a per-key cluster limit too: its fallback on /metrics, its share of the instances discovery sees', async () => {
    const away = await startRedis();
    await away.kill();
    closing.push(() => away.stop());
    const limiter = shared(10, away.url);
    const registry = new MemoryRegistry();
    // Another instance of the service, so that this one's share is half the limit.
    const other = {
      id: 'search-2',
      service: 'search',
      address: '127.0.0.1',
      port: 1,
      tags: [],
      meta: { weight: 1, labels: {} },
    };
    await registry.register({ instance: other, ttlMs: 60_000, deregisterAfterMs: 60_000 });
    const app = new TrellisApp({ service: 'search', ...quiet, registry });
    app.limitInbound({ rate: { perKey: new PerKey({ create: (k) => limiter.forKey(k) }), key: (req) => req.ip } });
    app.http.get('/search', async () => ({ found: [] }));
    const url = await started(app);
    expect((await fetch(`${url}/search`)).status).toBe(200);
    let text = '';
    for (let i = 0; i < 100 && (limiter.share !== 5 || !text.includes(`{limit="${limiter.name}"} 1`)); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      text = await (await fetch(`${url}/metrics`)).text();
    }
    expect(text).toContain(`trellis_ratelimit_fallback{limit="${limiter.name}"} 1`);
    expect(limiter.share).toBe(5);
    // A second key's first request adds no second subscription: the fallback is counted once per decision.
    await fetch(`${url}/search`, { headers: { 'x-forwarded-for': '10.0.0.9' } });
    text = await (await fetch(`${url}/metrics`)).text();
    const decisions = /trellis_ratelimit_fallback_decisions_total\{limit="[^"]+",decision="granted"\} (\d+)/.exec(text);
    expect(Number(decisions?.[1])).toBe(2);
  });
});
