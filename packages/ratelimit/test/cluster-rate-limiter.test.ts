import { ConfigError, ManualClock, type TelemetryEvent } from '@trellis/core';
import { ClusterRateLimiter, type ClusterRateLimiterOptions } from '@trellis/ratelimit';
import { startRedis, type RunningRedis } from './redis-server.js';

// The limiter's behaviour against a real redis-server, time from a ManualClock: the budget and
// the probes pass only when the test says so, and every wait is for an event, bounded.

interface Lines {
  readonly warn: string[];
  readonly info: string[];
}

function collector(): Lines & { warn: string[]; info: string[] } {
  return { warn: [], info: [] };
}

let redis: RunningRedis;
const made: ClusterRateLimiter[] = [];
let names = 0;

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await redis.stop();
});

afterEach(async () => {
  redis.resume();
  await Promise.all(made.splice(0).map((l) => l.close()));
});

function limiter(options: Partial<ClusterRateLimiterOptions> & { lines?: Lines; clock?: ManualClock }) {
  const lines = options.lines ?? collector();
  const made1 = new ClusterRateLimiter({
    name: `test-${process.pid}-${names}`,
    limit: 5,
    windowMs: 60_000,
    redis: redis.url,
    logger: { warn: (m) => lines.warn.push(m), info: (m) => lines.info.push(m) },
    clock: options.clock ?? new ManualClock(),
    ...options,
  });
  made.push(made1);
  return made1;
}

/** The next event of `limiter` that `match` accepts; fails after `ms` of real time. */
function nextEvent(
  source: ClusterRateLimiter,
  match: (e: TelemetryEvent) => boolean,
  ms = 5_000,
): Promise<TelemetryEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      subscription.dispose();
      reject(new Error(`no matching event within ${ms} ms`));
    }, ms);
    const subscription = source.onEvent((e) => {
      if (!match(e)) return;
      clearTimeout(timer);
      subscription.dispose();
      resolve(e);
    });
  });
}

/** Advances `clock` a probe interval at a time (at most 50) until `match` is emitted. */
async function probeUntil(clock: ManualClock, source: ClusterRateLimiter, match: (e: TelemetryEvent) => boolean) {
  let seen = false;
  const subscription = source.onEvent((e) => (seen ||= match(e)));
  for (let i = 0; i < 50 && !seen; i++) {
    clock.advance(source.probeIntervalMs);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  subscription.dispose();
  expect(seen).toBe(true);
}

const fallbackChanged = (fallback: boolean) => (e: TelemetryEvent) =>
  e.type === 'rate-limit-fallback-changed' && e.fallback === fallback;

describe('ClusterRateLimiter', () => {
  beforeEach(() => {
    names++;
  });

  it('counts the calls of every instance against one limit, and says when to come back', async () => {
    const a = limiter({});
    const b = limiter({});
    expect(await a.ready()).toBe(true);
    expect(await b.ready()).toBe(true);
    const decisions = [];
    for (let i = 0; i < 4; i++) decisions.push(await a.tryAcquire(), await b.tryAcquire());
    expect(decisions.filter((d) => d.granted)).toHaveLength(5);
    const refused = await b.tryAcquire();
    expect(refused.granted).toBe(false);
    const after = refused.granted ? 0 : (refused.retryAfterMs ?? 0);
    expect(after).toBeGreaterThan(0);
    expect(after).toBeLessThanOrEqual(60_000);
    expect(a.fallback || b.fallback).toBe(false);
  });

  it('counts each key apart with forKey', async () => {
    const shared = limiter({ limit: 2 });
    await shared.ready();
    const alice = shared.forKey('alice');
    const bob = shared.forKey('bob');
    const granted = async (l: { tryAcquire(): Promise<{ granted: boolean }> }) => (await l.tryAcquire()).granted;
    expect([await granted(alice), await granted(alice), await granted(alice)]).toEqual([true, true, false]);
    expect([await granted(bob), await granted(bob), await granted(bob)]).toEqual([true, true, false]);
    // The whole limit is a key of its own.
    expect(await granted(shared)).toBe(true);
  });

  it('refuses permits beyond the limit with a ConfigError, and counts several at once', async () => {
    const shared = limiter({ limit: 5 });
    await shared.ready();
    await expect(shared.tryAcquire(6)).rejects.toMatchObject({ code: 'INVALID_CONFIG', field: 'permits' });
    expect((await shared.tryAcquire(4)).granted).toBe(true);
    // A refused request counts as well (Redis adds before it compares): the window is spent.
    expect((await shared.tryAcquire(2)).granted).toBe(false);
    expect((await shared.tryAcquire(1)).granted).toBe(false);
  });

  it('decides from its share while Redis is away, says so once, and goes back when Redis returns', async () => {
    const clock = new ManualClock();
    const lines = collector();
    const away = await startRedis();
    await away.kill();
    try {
      const shared = limiter({ redis: away.url, limit: 20, instances: () => 4, clock, lines });
      // Not connected yet: local decisions, not a word until the first probe still finds it away.
      const first = await Promise.all(Array.from({ length: 7 }, () => shared.tryAcquire()));
      expect(first.filter((d) => d.granted)).toHaveLength(5); // 20 / 4 instances
      expect(shared.fallback).toBe(true);
      expect(lines.warn).toEqual([]);
      const announced = nextEvent(shared, fallbackChanged(true));
      clock.advance(1_000);
      expect(await announced).toMatchObject({ limit: shared.name, share: 5 });
      clock.advance(1_000);
      clock.advance(1_000);
      expect(lines.warn).toHaveLength(1);
      expect(lines.warn[0]).toMatch(/falls back to this instance's share, 5 per 60000 ms: Redis is not connected/);
      // Back: the client reconnects, the probe answers, the shared limit applies again.
      const back = nextEvent(shared, fallbackChanged(false), 8_000);
      await away.restart();
      await back;
      expect(shared.fallback).toBe(false);
      expect(lines.info).toHaveLength(1);
      expect(lines.info[0]).toMatch(/is shared again/);
      expect(lines.warn).toHaveLength(1);
      expect((await shared.tryAcquire()).granted).toBe(true);
    } finally {
      await away.stop();
    }
  }, 15_000);

  it('takes the decision locally once the budget passes with no answer, then probes Redis', async () => {
    const clock = new ManualClock();
    const lines = collector();
    const shared = limiter({ limit: 10, budgetMs: 5, clock, lines });
    expect(await shared.ready()).toBe(true);
    const local: TelemetryEvent[] = [];
    shared.onEvent((e) => local.push(e));
    await redis.pause();
    const pending = shared.tryAcquire();
    clock.advance(4);
    let settled = false;
    void pending.then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    clock.advance(1);
    expect(await pending).toEqual({ granted: true });
    expect(shared.fallback).toBe(true);
    expect(lines.warn).toEqual([expect.stringMatching(/did not answer within the budget of 5 ms/)]);
    // Falling back, decisions are at once and Redis is not asked.
    expect((await shared.tryAcquire()).granted).toBe(true);
    // A probe into a Redis still stalled fails within the budget too, and says nothing more.
    clock.advance(1_000);
    clock.advance(5);
    expect(lines.warn).toHaveLength(1);
    redis.resume();
    // Once the stalled PING is answered, the next probe finds Redis in time.
    await probeUntil(clock, shared, fallbackChanged(false));
    expect(lines.info).toHaveLength(1);
    expect(local.filter((e) => e.type === 'rate-limit-decided-locally')).toEqual([
      { type: 'rate-limit-decided-locally', limit: shared.name, granted: true },
      { type: 'rate-limit-decided-locally', limit: shared.name, granted: true },
    ]);
  });

  it('refuses bad options with a ConfigError naming the field', () => {
    const base = { name: 'search', limit: 10, redis: 'redis://127.0.0.1:1' } as const;
    const field = (options: Record<string, unknown>): string | undefined => {
      try {
        new ClusterRateLimiter({ ...base, ...options });
        return undefined;
      } catch (error) {
        return ConfigError.is(error) ? error.field : String(error);
      }
    };
    expect(field({ name: '' })).toBe('name');
    expect(field({ limit: 0 })).toBe('limit');
    expect(field({ limit: 1.5 })).toBe('limit');
    expect(field({ windowMs: 1_500 })).toBe('windowMs');
    expect(field({ budgetMs: 0 })).toBe('budgetMs');
    expect(field({ probeIntervalMs: -1 })).toBe('probeIntervalMs');
    expect(field({ instances: 3 })).toBe('instances');
    expect(field({ redis: 'http://127.0.0.1:6379' })).toBe('redis');
    expect(field({ logger: { warn: 1 } })).toBe('logger');
  });
});
