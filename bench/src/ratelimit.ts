// Decisions of a cluster rate limit (ClusterRateLimiter on a real redis-server this bench
// starts) against a local TokenBucket in the same run: the price of sharing a limit across
// instances. `npm run bench -- ratelimit`; needs /usr/bin/redis-server (Debian's redis-server).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { ClusterRateLimiter } from '@trellis/ratelimit';
import { RateLimit, TokenBucket } from '@trellis/resilience';
import { freePort } from './free-port.js';
import { printTable } from './measure.js';

const redisBinary = '/usr/bin/redis-server';

async function startRedis(): Promise<{ url: string; stop: () => Promise<void> }> {
  if (!existsSync(redisBinary)) throw new Error(`${redisBinary} not found: install Debian's redis-server package`);
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-bench-redis-'));
  const port = await freePort();
  const child = spawn(
    redisBinary,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error('redis-server did not start in 10 s')), 10_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.includes('Ready to accept connections')) {
        clearTimeout(guard);
        resolve();
      }
    });
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}

export async function ratelimitBench(): Promise<Record<string, number | string | null>> {
  // Local: a token bucket that always grants, asked synchronously, and through the RateLimit policy.
  const bucket = new TokenBucket({ ratePerSecond: 1e12, burst: 1e12 });
  const localN = 2_000_000;
  for (let i = 0; i < 100_000; i++) bucket.tryAcquire();
  let started = process.hrtime.bigint();
  for (let i = 0; i < localN; i++) bucket.tryAcquire();
  const localNs = Number(process.hrtime.bigint() - started) / localN;
  const localPolicy = new RateLimit(bucket);
  const ok = async (): Promise<number> => 1;
  const policyN = 300_000;
  for (let i = 0; i < 10_000; i++) await localPolicy.execute(ok);
  started = process.hrtime.bigint();
  for (let i = 0; i < policyN; i++) await localPolicy.execute(ok);
  const localPolicyNs = Number(process.hrtime.bigint() - started) / policyN;

  const redis = await startRedis();
  const limiter = new ClusterRateLimiter({
    name: 'bench',
    limit: 1_000_000_000,
    windowMs: 60_000,
    redis: redis.url,
    // The bench measures Redis's decisions, not the fallback: a budget no answer here misses.
    budgetMs: 1_000,
    logger: false,
  });
  try {
    if (!(await limiter.ready(10_000))) throw new Error('Redis did not become ready');
    // Sequential: one decision in flight, the latency a request pays.
    const sequentialN = 20_000;
    for (let i = 0; i < 2_000; i++) await limiter.tryAcquire();
    const latencies = new Array<number>(sequentialN);
    started = process.hrtime.bigint();
    for (let i = 0; i < sequentialN; i++) {
      const t0 = performance.now();
      const decision = await limiter.tryAcquire();
      latencies[i] = performance.now() - t0;
      if (!decision.granted) throw new Error('the bench limit refused a call');
    }
    const clusterNs = Number(process.hrtime.bigint() - started) / sequentialN;
    latencies.sort((a, b) => a - b);
    // Concurrent: 64 decisions in flight, as a busy server has; ioredis pipelines them on one socket.
    const concurrentN = 50_000;
    let next = 0;
    started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next++ < concurrentN) await limiter.tryAcquire();
      }),
    );
    const concurrentNs = Number(process.hrtime.bigint() - started) / concurrentN;
    const fellBack = limiter.fallback;
    const p50 = percentile(latencies, 0.5);
    const p99 = percentile(latencies, 0.99);
    printTable(
      ['limiter', 'ns_per_decision', 'p50_ms', 'p99_ms', 'ratio_vs_local'],
      [
        ['TokenBucket.tryAcquire (local, sync)', localNs.toFixed(1), '-', '-', '1.0'],
        ['RateLimit policy on TokenBucket', localPolicyNs.toFixed(1), '-', '-', (localPolicyNs / localNs).toFixed(1)],
        [
          'ClusterRateLimiter, 1 in flight',
          clusterNs.toFixed(0),
          p50.toFixed(3),
          p99.toFixed(3),
          (clusterNs / localNs).toFixed(0),
        ],
        ['ClusterRateLimiter, 64 in flight', concurrentNs.toFixed(0), '-', '-', (concurrentNs / localNs).toFixed(0)],
      ],
    );
    return {
      cluster_limit_ns_per_decision: Math.round(clusterNs),
      cluster_concurrent_ns_per_decision: Math.round(concurrentNs),
      local_ns_per_decision: Number(localNs.toFixed(2)),
      local_policy_ns_per_call: Number(localPolicyNs.toFixed(1)),
      cluster_ratio_vs_local: Math.round(clusterNs / localNs),
      cluster_concurrent_ratio_vs_local: Math.round(concurrentNs / localNs),
      cluster_p50_ms: Number(p50.toFixed(3)),
      cluster_p99_ms: Number(p99.toFixed(3)),
      cluster_fell_back: fellBack ? 1 : 0,
    };
  } finally {
    await limiter.close();
    await redis.stop();
  }
}
