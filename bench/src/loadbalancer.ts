import { CallContext, compose, ManualClock, sleep, type Call, type ServiceInstance } from '@trellis/core';
import { ConsistentHash, createStrategy, LoadBalancer, type Strategy, type StrategyName } from '@trellis/loadbalancer';
import { printTable } from './measure.js';

/** A seeded generator of numbers in [0, 1) (mulberry32), so that every run simulates the same calls. */
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

/** A log-normal factor with median 1: latencies with a realistic right tail. */
function jitter(random: () => number, sigma: number): number {
  const u = Math.max(random(), Number.MIN_VALUE);
  const normal = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  return Math.exp(sigma * normal);
}

function instance(id: string): ServiceInstance {
  return { id, service: 'users', address: '127.0.0.1', port: 1, tags: [], meta: { weight: 1, labels: {} } };
}

/** How a simulated instance answers: its median latency, and the share of calls it fails. */
interface Backend {
  readonly medianMs: number;
  readonly failShare: number;
}

interface Scenario {
  readonly name: string;
  readonly title: string;
  readonly backends: Readonly<Record<string, Backend>>;
  /** The instance the scenario is about (slow or failing), whose share of calls is shown. */
  readonly odd: string;
}

const scenarios: readonly Scenario[] = [
  {
    name: 'slow',
    title: 'three instances, one ten times slower (median 10 ms, 10 ms, 100 ms)',
    backends: {
      a: { medianMs: 10, failShare: 0 },
      b: { medianMs: 10, failShare: 0 },
      c: { medianMs: 100, failShare: 0 },
    },
    odd: 'c',
  },
  {
    name: 'failing',
    title: 'three instances of median 10 ms, one failing 5% of its calls with a fast (1 ms) 503',
    backends: {
      a: { medianMs: 10, failShare: 0 },
      b: { medianMs: 10, failShare: 0 },
      c: { medianMs: 10, failShare: 0.05 },
    },
    odd: 'c',
  },
];

const simulated: readonly StrategyName[] = [
  'round-robin',
  'random',
  'weighted-round-robin',
  'least-outstanding',
  'p2c-peak-ewma',
  'consistent-hash',
];

interface SimFigures {
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errorRate: number;
  readonly oddShare: number;
}

const simCalls = 20_000;
const simConcurrency = 32;
const users = 1_000;

function strategyFor(name: StrategyName, clock: ManualClock, random: () => number): Strategy {
  if (name === 'consistent-hash') return new ConsistentHash({ key: { header: 'x-user-id' } });
  return createStrategy(name, { clock, random });
}

/**
 * Runs `simCalls` calls, `simConcurrency` at a time in closed loop, through a LoadBalancer and
 * its feedback filter to simulated instances that answer on a manual clock: simulated time,
 * so the figures are the strategies' alone, the same on every run and on a busy machine.
 */
async function simulate(scenario: Scenario, name: StrategyName): Promise<SimFigures> {
  const clock = new ManualClock();
  const random = seeded(2026);
  const backendRandom = seeded(7);
  const lb = new LoadBalancer({ strategy: strategyFor(name, clock, random), clock, random });
  const instances = Object.keys(scenario.backends).map(instance);
  const send = compose([lb.feedback], async (_call, context) => {
    const chosen = context.instance as ServiceInstance;
    const backend = scenario.backends[chosen.id] as Backend;
    const fails = backendRandom() < backend.failShare;
    await sleep(clock, fails ? 1 : backend.medianMs * jitter(backendRandom, 0.25));
    return { status: fails ? 503 : 200, headers: {}, body: null, instance: chosen };
  });
  const calls: Call[] = Array.from({ length: users }, (_, i) => ({
    service: 'users',
    method: 'GET',
    path: `/users/${i}`,
    headers: { 'x-user-id': `user-${i}` },
  }));
  const latencies = new Float64Array(simCalls);
  let started = 0;
  let done = 0;
  let errors = 0;
  let odd = 0;
  const worker = async (): Promise<void> => {
    while (started < simCalls) {
      const i = started++;
      const call = calls[Math.floor(random() * users)] as Call;
      const chosen = lb.select(instances, call) as ServiceInstance;
      if (chosen.id === scenario.odd) odd++;
      const t0 = clock.now();
      const context = new CallContext();
      context.instance = chosen;
      const reply = await send(call, context);
      latencies[i] = clock.now() - t0;
      if (reply.status >= 500) errors++;
      done++;
    }
  };
  const workers = Promise.all(Array.from({ length: simConcurrency }, worker));
  // Simulated time moves 1 ms at a time; the bound is far above the run's simulated length.
  for (let step = 0; step < 10_000_000 && done < simCalls; step++) await clock.advanceAsync(1);
  await workers;
  const sorted = latencies.sort();
  const at = (q: number): number => sorted[Math.min(simCalls - 1, Math.floor(q * simCalls))] ?? Number.NaN;
  return { p50Ms: at(0.5), p99Ms: at(0.99), errorRate: errors / simCalls, oddShare: odd / simCalls };
}

/** Nanoseconds per `select()` over `instances`, cycling through `calls`. */
function selectNs(
  strategy: Strategy,
  instances: readonly ServiceInstance[],
  calls: readonly Call[],
  iterations: number,
): number {
  let sink = 0;
  const mask = calls.length - 1; // calls.length is a power of two
  for (let i = 0; i < iterations / 10; i++) sink += strategy.select(instances, calls[i & mask] as Call)?.port ?? 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) sink += strategy.select(instances, calls[i & mask] as Call)?.port ?? 0;
  const ns = Number(process.hrtime.bigint() - t0) / iterations;
  if (sink < 0) console.log(sink); // keeps the loop from being optimised away
  return ns;
}

const key = (name: string): string => name.replaceAll('-', '_');

/**
 * How well each strategy picks (p50 / p99 latency and error rate against simulated backends,
 * each as a ratio to round robin) and what one pick costs (ns per `select()` on 3 and on 100
 * instances, and picks per second).
 */
export async function loadbalancerBench(): Promise<Record<string, number | string>> {
  const figures: Record<string, number | string> = {};

  for (const scenario of scenarios) {
    const results = new Map<StrategyName, SimFigures>();
    for (const name of simulated) results.set(name, await simulate(scenario, name));
    const base = results.get('round-robin') as SimFigures;
    console.log(
      `\nScenario "${scenario.name}": ${scenario.title};\n` +
        `${simCalls} calls, ${simConcurrency} in flight, simulated time (manual clock):\n`,
    );
    const rows: Array<Array<string | number>> = [];
    for (const [name, r] of results) {
      const p99Ratio = r.p99Ms / base.p99Ms;
      const errorRatio = base.errorRate === 0 ? Number.NaN : r.errorRate / base.errorRate;
      rows.push([
        name,
        r.p50Ms,
        r.p50Ms / base.p50Ms,
        r.p99Ms,
        p99Ratio,
        `${(r.errorRate * 100).toFixed(2)}%`,
        Number.isNaN(errorRatio) ? '-' : errorRatio,
        `${(r.oddShare * 100).toFixed(1)}%`,
      ]);
      const k = `${scenario.name}_${key(name)}`;
      figures[`${k}_p50_ms`] = Number(r.p50Ms.toFixed(2));
      figures[`${k}_p99_ms`] = Number(r.p99Ms.toFixed(2));
      figures[`${k}_p50_ratio_vs_round_robin`] = Number((r.p50Ms / base.p50Ms).toFixed(3));
      figures[`${k}_p99_ratio_vs_round_robin`] = Number(p99Ratio.toFixed(3));
      figures[`${k}_error_rate`] = Number(r.errorRate.toFixed(4));
      if (!Number.isNaN(errorRatio)) figures[`${k}_error_ratio_vs_round_robin`] = Number(errorRatio.toFixed(3));
    }
    printTable(
      ['strategy', 'p50_ms', 'p50_vs_rr', 'p99_ms', 'p99_vs_rr', 'errors', 'errors_vs_rr', `share_to_${scenario.odd}`],
      rows,
    );
  }

  console.log('\nCost of one select() (real time, one core; no feedback, so every instance looks idle):\n');
  const calls: Call[] = Array.from({ length: 1_024 }, (_, i) => ({
    service: 'users',
    method: 'GET',
    path: `/users/${i}`,
    headers: { 'x-user-id': `user-${i}` },
  }));
  const ejected = new Set<string>();
  const lists = [3, 100].map((n) => Array.from({ length: n }, (_, i) => instance(`users-${i}`)));
  const costed: Array<[string, () => Strategy]> = [
    ...(['round-robin', 'random', 'weighted-round-robin', 'least-outstanding', 'p2c-peak-ewma'] as const).map(
      (name): [string, () => Strategy] => [name, () => createStrategy(name)],
    ),
    ['consistent-hash', () => new ConsistentHash({ key: { header: 'x-user-id' } })],
    ['zone-aware', () => createStrategy('zone-aware', { zone: 'z1' })],
    [
      'load-balancer (90/10 split + health + p2c)',
      () =>
        new LoadBalancer({
          rules: {
            routes: [{ match: { headers: { 'x-canary': 'always' } }, to: { tags: ['canary'] } }],
            default: {
              split: [
                { subset: {}, weight: 90 },
                { subset: { tags: ['canary'] }, weight: 10 },
              ],
            },
          },
          // As a breaker registry would answer: a lookup by id, here with nothing ejected.
          health: { isEjected: (i) => ejected.has(i.id) },
        }),
    ],
  ];
  const rows: Array<Array<string | number>> = [];
  for (const [name, make] of costed) {
    const row: Array<string | number> = [name];
    for (const list of lists) {
      const ns = selectNs(make(), list, calls, list.length > 10 ? 1_000_000 : 2_000_000);
      row.push(ns, 1e9 / ns);
      const k = `select_${key(name.split(' ')[0] as string)}_${list.length}`;
      figures[`${k}_ns`] = Number(ns.toFixed(1));
      figures[`${k}_picks_per_s`] = Math.round(1e9 / ns);
    }
    rows.push(row);
  }
  printTable(['strategy', 'ns_3', 'picks_per_s_3', 'ns_100', 'picks_per_s_100'], rows);

  const slowP2c = figures['slow_p2c_peak_ewma_p99_ratio_vs_round_robin'];
  console.log(`\nTarget: P2C + peak EWMA p99 <= 1/3 of round robin's with one slow instance: ${slowP2c}`);
  console.log(
    `Targets: >= 5M picks/s round robin (${figures['select_round_robin_3_picks_per_s']} on 3), ` +
      `>= 1M picks/s P2C (${figures['select_p2c_peak_ewma_3_picks_per_s']} on 3, ` +
      `${figures['select_p2c_peak_ewma_100_picks_per_s']} on 100)`,
  );
  return figures;
}
