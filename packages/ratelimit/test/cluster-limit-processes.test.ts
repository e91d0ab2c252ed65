import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startRedis, type RunningRedis } from './redis-server.js';

// Three instances of one service, each its own node process with its own ClusterRateLimiter,
// all on one redis-server, called at once: the limit holds for the three together.
const service = fileURLToPath(new URL('./fixtures/limited-service.js', import.meta.url));

interface Instance {
  readonly child: ChildProcess;
  readonly url: string;
  readonly stderr: string[];
  readonly exited: Promise<void>;
}

function startInstance(redis: string, name: string, limit: number): Promise<Instance> {
  const child = spawn(process.execPath, [service, redis, name, String(limit)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  createInterface({ input: child.stderr }).on('line', (line) => stderr.length < 100 && stderr.push(line));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the instance did not start in 15 s: ${stderr.join('\n')}`));
    }, 15_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      clearTimeout(guard);
      resolve({ child, url: (JSON.parse(line) as { url: string }).url, stderr, exited });
    });
    void exited.then(() => {
      clearTimeout(guard);
      reject(new Error(`the instance exited before serving: ${stderr.join('\n')}`));
    });
  });
}

/** Sends `count` requests to `url`, `concurrency` at a time; the statuses, and the Retry-After of each 429. */
async function drive(url: string, count: number, concurrency: number) {
  const statuses: number[] = [];
  const retryAfter: Array<string | null> = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        const response = await fetch(`${url}/search`, { signal: AbortSignal.timeout(10_000) });
        await response.arrayBuffer();
        statuses.push(response.status);
        if (response.status === 429) retryAfter.push(response.headers.get('retry-after'));
      }
    }),
  );
  return { statuses, retryAfter };
}

describe('a cluster rate limit across processes', () => {
  let redis: RunningRedis;
  const instances: Instance[] = [];

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    for (const instance of instances) instance.child.kill('SIGTERM');
    await Promise.all(
      instances.map(async (instance) => {
        const guard = setTimeout(() => instance.child.kill('SIGKILL'), 5_000);
        await instance.exited;
        clearTimeout(guard);
      }),
    );
    await redis?.stop();
  });

  it('holds within 5% across three instances in three processes called at once', async () => {
    const limit = 300;
    const name = `search-${process.pid}`;
    // Each one that starts is kept, for afterAll to stop, even when another fails to.
    const started = await Promise.allSettled([0, 1, 2].map(() => startInstance(redis.url, name, limit)));
    for (const s of started) if (s.status === 'fulfilled') instances.push(s.value);
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    // Four times the limit, a third to each instance, all at once.
    const results = await Promise.all(instances.map((instance) => drive(instance.url, 400, 8)));
    const granted = results.map((r) => r.statuses.filter((s) => s === 200).length);
    const refused = results.map((r) => r.statuses.filter((s) => s === 429).length);
    const total = granted.reduce((a, b) => a + b, 0);
    expect(Math.abs(total - limit)).toBeLessThanOrEqual(limit * 0.05);
    expect(granted.reduce((a, b) => a + b, 0) + refused.reduce((a, b) => a + b, 0)).toBe(1_200);
    // Each instance served some of it: the count is shared, not one instance's.
    for (const g of granted) expect(g).toBeGreaterThan(0);
    for (const r of results) for (const header of r.retryAfter) expect(Number(header)).toBeGreaterThanOrEqual(1);
    // Redis answered in time all along: no instance fell back.
    for (const instance of instances) expect(instance.stderr.filter((l) => /falls back/.test(l))).toEqual([]);
  }, 30_000);
});
