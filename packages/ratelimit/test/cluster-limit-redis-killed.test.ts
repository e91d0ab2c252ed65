import { systemClock, type Clock } from '@trellis/core';
import { TrellisMetrics } from '@trellis/metrics';
import { ClusterRateLimiter } from '@trellis/ratelimit';
import { startRedis, type RunningRedis } from './redis-server.js';

// Three instances' limiters (one each, as three processes would have) under steady load while
// Redis is killed with SIGKILL and started again: no decision waits past the budget, each
// instance grants its share alone, the metric and the log say so once each way.

const budgetMs = 5;
// The event loop of a machine shared with other work fires a 5 ms timer late by a few ms, and
// by as much as the loop itself lags (measured beside the load, below) when CPUs are busy.
const slackMs = 20;
// Large enough that the calls before the kill leave it unspent (a spent window is refused from
// memory, without asking Redis, until it ends).
const limit = 3_000;
const instances = 3;

interface Instance {
  readonly limiter: ClusterRateLimiter;
  readonly metrics: TrellisMetrics;
  readonly warn: string[];
  readonly info: string[];
  readonly latencies: number[];
  /** Its fallback-changed events: true when it fell back, false when it was shared again. */
  readonly changes: boolean[];
  /** Decisions taken while the limiter was falling back, granted or not. */
  local: { granted: number; refused: number };
  shared: number;
}

// About a decision per millisecond per caller.
const pause = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 1));

/** Resolves when `done()` holds, checking each turn of the loop; fails after `ms`. */
async function until(done: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function gauge(metrics: TrellisMetrics, name: string): Promise<string | undefined> {
  const text = await metrics.registry.metrics();
  return new RegExp(`^trellis_ratelimit_fallback\\{limit="${name}"\\} (\\d+)$`, 'm').exec(text)?.[1];
}

describe('a cluster rate limit when Redis is killed under load', () => {
  let redis: RunningRedis;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);

  beforeAll(async () => {
    redis = await startRedis();
    process.on('unhandledRejection', onUnhandled);
  });

  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    await redis.stop();
  });

  it('falls back to each instance share within the budget, says so once, and goes back when Redis returns', async () => {
    const name = `killed-${process.pid}`;
    // The local share's windows start at multiples of 60 s of its clock: one that starts with
    // the test keeps the whole test (under 25 s) in one window, whenever in the run it comes.
    const started = performance.now();
    const clock: Clock = { now: () => performance.now() - started, setTimer: (ms, fn) => systemClock.setTimer(ms, fn) };
    const made: Instance[] = Array.from({ length: instances }, () => {
      const warn: string[] = [];
      const info: string[] = [];
      const limiter = new ClusterRateLimiter({
        name,
        limit,
        windowMs: 60_000,
        redis: redis.url,
        budgetMs,
        probeIntervalMs: 100,
        instances: () => instances,
        clock,
        logger: { warn: (m) => warn.push(m), info: (m) => info.push(m) },
      });
      const metrics = new TrellisMetrics({ processMetrics: false });
      metrics.subscribe(limiter);
      const changes: boolean[] = [];
      limiter.onEvent((e) => e.type === 'rate-limit-fallback-changed' && changes.push(e.fallback));
      return { limiter, metrics, warn, info, latencies: [], changes, local: { granted: 0, refused: 0 }, shared: 0 };
    });
    try {
      for (const m of made) expect(await m.limiter.ready()).toBe(true);
      let running = true;
      // The loop's own lag: how late a 1 ms timer fires, at worst, while the load runs.
      let loopLagMs = 0;
      const lag = (async () => {
        while (running) {
          const t0 = performance.now();
          await new Promise((resolve) => setTimeout(resolve, 1));
          loopLagMs = Math.max(loopLagMs, performance.now() - t0 - 1);
        }
      })();
      // Four callers per instance, one decision in flight each.
      const load = made.flatMap((m) =>
        Array.from({ length: 4 }, async () => {
          while (running) {
            const wasLocal = m.limiter.fallback;
            const started = performance.now();
            const decision = await m.limiter.tryAcquire();
            m.latencies.push(performance.now() - started);
            if (!wasLocal && !m.limiter.fallback) m.shared++;
            else if (wasLocal) m.local[decision.granted ? 'granted' : 'refused']++;
            await pause();
          }
        }),
      );
      await until(() => made.every((m) => m.shared >= 50), 'shared decisions');
      // A loaded machine may make a Redis answer miss 5 ms before the kill (and the probe bring
      // it back): count from a moment every instance is shared.
      await until(() => made.every((m) => !m.limiter.fallback), 'every instance shared before the kill');
      const before = made.map((m) => ({ warn: m.warn.length, info: m.info.length, changes: m.changes.length }));
      await redis.kill();
      await until(() => made.every((m) => m.limiter.fallback), 'every instance falling back');
      // Past its share: 1 000 of 3 000 for each of three.
      await until(() => made.every((m) => m.local.granted + m.local.refused >= 1_300), 'local decisions');
      const share = limit / instances;
      for (const [i, m] of made.entries()) {
        expect(m.local.granted).toBeLessThanOrEqual(share);
        expect(m.local.granted).toBeGreaterThanOrEqual(share - 20);
        const since = m.warn.slice(before[i]?.warn);
        expect(since.length).toBeGreaterThanOrEqual(1);
        expect(since.at(-1)).toMatch(/falls back to this instance's share, 1000 per 60000 ms: Redis /);
        expect(await gauge(m.metrics, name)).toBe('1');
      }
      await redis.restart();
      await until(() => made.every((m) => !m.limiter.fallback), 'every instance shared again');
      const sharedAgain = made.map((m) => m.shared);
      await until(() => made.every((m, i) => m.shared >= (sharedAgain[i] ?? 0) + 20), 'shared decisions again');
      running = false;
      await Promise.all([...load, lag]);
      // A decision that missed the budget since (a fresh Redis loads its script first) falls back
      // again until the next probe: wait for that probe.
      await until(() => made.every((m) => !m.limiter.fallback), 'every instance shared at the end');
      for (const [i, m] of made.entries()) {
        // Once each way: every change, and only a change, has its one line (a loaded machine may
        // add a miss of the budget, and its way back, to the kill's).
        const changes = m.changes.slice(before[i]?.changes);
        expect(changes.length % 2).toBe(0);
        expect(changes.length).toBeGreaterThanOrEqual(2);
        expect(changes).toEqual(changes.map((_, k) => k % 2 === 0));
        const warned = m.warn.slice(before[i]?.warn);
        const informed = m.info.slice(before[i]?.info);
        expect(warned).toHaveLength(changes.length / 2);
        expect(informed).toHaveLength(changes.length / 2);
        for (const line of informed) expect(line).toMatch(/is shared again/);
        expect(await gauge(m.metrics, name)).toBe('0');
        const slowest = Math.max(...m.latencies);
        expect(slowest).toBeLessThanOrEqual(budgetMs + slackMs + loopLagMs);
        // The decisions in flight when Redis died were local too: the counter has them all.
        const text = await m.metrics.registry.metrics();
        expect(text).toContain(
          `trellis_ratelimit_fallback_decisions_total{limit="${name}",decision="granted"} ${share}`,
        );
        if (process.env.SHOW_LATENCY)
          console.log(name, 'slowest decision ms', slowest.toFixed(2), 'loop lag ms', loopLagMs.toFixed(2));
      }
      expect(unhandled).toEqual([]);
    } finally {
      await Promise.all(made.map((m) => m.limiter.close()));
      for (const m of made) m.metrics.dispose();
    }
  }, 25_000);
});
