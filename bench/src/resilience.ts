import v8 from 'node:v8';
import vm from 'node:vm';
import {
  bulkhead as cockatielBulkhead,
  circuitBreaker as cockatielBreaker,
  ConstantBackoff,
  handleAll,
  retry as cockatielRetry,
  SamplingBreaker,
  timeout as cockatielTimeout,
  TimeoutStrategy,
  wrap,
} from 'cockatiel';
import OpossumBreaker from 'opossum';
import {
  CallContext,
  Stack,
  systemClock,
  Telemetry,
  UpstreamStatusError,
  type Call,
  type Reply,
  type ServiceInstance,
  type Stage,
} from '@trellis/core';
import {
  Bulkhead,
  CircuitBreakerRegistry,
  ConcurrencyLimit,
  Hedging,
  instanceCircuitBreaker,
  PerKey,
  RateLimit,
  Retry,
  Timeout,
  TokenBucket,
} from '@trellis/resilience';
import { median, printTable } from './measure.js';

const instance: ServiceInstance = {
  id: 'users-1',
  service: 'users',
  address: '127.0.0.1',
  port: 1,
  tags: [],
  meta: { weight: 1, labels: {} },
};
const reply: Reply = { status: 200, headers: {}, body: { id: '1' }, instance };
const call: Call = { service: 'users', method: 'GET', path: '/users/1', headers: {} };
// A retryable failure (a 503 as an error), so that the retry policies retry it.
const failure = new UpstreamStatusError('users', 'users-1', 503, null);

/** The bare async call every variant wraps: fails one call in `failEvery` (never when 0). */
function target(failEvery: number): () => Promise<Reply> {
  let n = 0;
  return () => (failEvery > 0 && ++n % failEvery === 0 ? Promise.reject(failure) : Promise.resolve(reply));
}

type Run = () => Promise<unknown>;
type Variant = (send: () => Promise<Reply>) => { run: Run; close?: () => void };

/** The policies, each alone and stacked, for Trellis, cockatiel and opossum. */
function variants(): Array<[string, string, Variant]> {
  // Each stage built as a ServiceClient's stack builds it, over a context with the instance chosen.
  const built = (stages: Stage[], send: () => Promise<Reply>): { run: Run; close: () => void } => {
    const stack = new Stack([...stages, { name: 'transport', role: 'transport', make: () => () => send() }]);
    const service = stack.build({
      service: 'users',
      clock: systemClock,
      random: Math.random,
      telemetry: new Telemetry(),
    });
    const run = (): Promise<Reply> => {
      const context = new CallContext();
      context.instance = instance;
      return service(call, context);
    };
    return { run, close: () => stack.close() };
  };
  const trellis =
    (...stages: Stage[]): Variant =>
    (send) =>
      built(stages, send);
  // What ServiceClient runs, minus instance selection: call stages, then the per-attempt ones.
  const trellisStack: Variant = (send) => {
    const breakers = new CircuitBreakerRegistry();
    const { run, close } = built(
      [
        new RateLimit(new TokenBucket({ ratePerSecond: 1e9, burst: 1e9 })),
        new Bulkhead(new ConcurrencyLimit({ maxConcurrent: 10_000 })),
        new Retry({ backoffBaseMs: 0, backoffMaxMs: 0 }),
        instanceCircuitBreaker(breakers),
        new Timeout({ timeoutMs: 1_000 }),
      ],
      send,
    );
    return { run, close: () => (close(), void breakers.close()) };
  };
  const cockatiel = (policy: { execute: (fn: () => Promise<Reply>) => Promise<Reply> }): Variant => {
    return (send) => ({ run: () => policy.execute(send) });
  };
  const cockatielPolicies = () => ({
    breaker: cockatielBreaker(handleAll, {
      halfOpenAfter: 10_000,
      breaker: new SamplingBreaker({ threshold: 0.5, duration: 10_000 }),
    }),
    retry: cockatielRetry(handleAll, { maxAttempts: 2, backoff: new ConstantBackoff(0) }),
    timeout: cockatielTimeout(1_000, TimeoutStrategy.Aggressive),
    bulkhead: cockatielBulkhead(10_000, 0),
  });
  return [
    ['bare async call (baseline)', 'bare', (send) => ({ run: send })],
    [
      'trellis breaker (per instance)',
      'trellis_breaker',
      (send) => {
        const breakers = new CircuitBreakerRegistry();
        const { run, close } = trellis(instanceCircuitBreaker(breakers))(send);
        return { run, close: () => (close?.(), void breakers.close()) };
      },
    ],
    [
      'trellis retry (budget)',
      'trellis_retry',
      (send) => trellis(new Retry({ backoffBaseMs: 0, backoffMaxMs: 0 }))(send),
    ],
    ['trellis attempt timeout', 'trellis_timeout', (send) => trellis(new Timeout({ timeoutMs: 1_000 }))(send)],
    [
      'trellis bulkhead',
      'trellis_bulkhead',
      (send) => trellis(new Bulkhead(new ConcurrencyLimit({ maxConcurrent: 10_000 })))(send),
    ],
    [
      'trellis rate limit (token bucket)',
      'trellis_rate_limit',
      (send) => trellis(new RateLimit(new TokenBucket({ ratePerSecond: 1e9, burst: 1e9 })))(send),
    ],
    [
      'trellis rate limit (1 000 keys)',
      'trellis_rate_limit_per_key',
      (send) => {
        const perKey = new PerKey({ create: () => new TokenBucket({ ratePerSecond: 1e9, burst: 1e9 }) });
        let i = 0;
        const keys = Array.from({ length: 1_000 }, (_, k) => `caller-${k}`);
        return trellis(new RateLimit({ perKey, key: () => keys[i++ % 1_000] as string }))(send);
      },
    ],
    [
      'trellis hedging (not reached)',
      'trellis_hedging',
      (send) => {
        return trellis(new Hedging({ delayMs: 1_000 }))(send);
      },
    ],
    ['trellis whole stack', 'trellis_stack', trellisStack],
    ['cockatiel breaker (sampling)', 'cockatiel_breaker', (send) => cockatiel(cockatielPolicies().breaker)(send)],
    ['cockatiel retry', 'cockatiel_retry', (send) => cockatiel(cockatielPolicies().retry)(send)],
    ['cockatiel timeout (aggressive)', 'cockatiel_timeout', (send) => cockatiel(cockatielPolicies().timeout)(send)],
    ['cockatiel bulkhead', 'cockatiel_bulkhead', (send) => cockatiel(cockatielPolicies().bulkhead)(send)],
    [
      'cockatiel stack (no rate limiter)',
      'cockatiel_stack',
      (send) => {
        const p = cockatielPolicies();
        return cockatiel(wrap(p.bulkhead, p.retry, p.breaker, p.timeout))(send);
      },
    ],
    [
      'opossum, default options',
      'opossum_default',
      (send) => {
        const breaker = new OpossumBreaker(send);
        return { run: () => breaker.fire(), close: () => breaker.shutdown() };
      },
    ],
    [
      'opossum, no percentiles, no timeout',
      'opossum_tuned',
      (send) => {
        const breaker = new OpossumBreaker(send, { rollingPercentilesEnabled: false, timeout: false });
        return { run: () => breaker.fire(), close: () => breaker.shutdown() };
      },
    ],
  ];
}

/** ns per call: a short probe sizes the runs to about `targetMs` each; the median of 3 runs. */
async function nsPerCallOf(run: Run, targetMs: number): Promise<number> {
  const loop = async (n: number): Promise<number> => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await run().catch(() => undefined);
    return Number(process.hrtime.bigint() - t0) / n;
  };
  const probe = await loop(2_000);
  const iterations = Math.max(2_000, Math.min(400_000, Math.round((targetMs * 1e6) / probe)));
  await loop(Math.min(iterations, 20_000));
  return median([await loop(iterations), await loop(iterations), await loop(iterations)]);
}

/** Heap retained (after a full GC) by a policy after `seconds` of calls at the highest rate. */
async function retainedAfter(
  variant: Variant,
  seconds: number,
  gc: () => void,
): Promise<{ calls: number; mb: number }> {
  gc();
  const before = process.memoryUsage().heapUsed;
  const { run, close } = variant(target(0));
  const end = performance.now() + seconds * 1_000;
  let calls = 0;
  // Bounded by time: check the clock every 1 000 calls.
  while (performance.now() < end) {
    for (let i = 0; i < 1_000; i++) await run();
    calls += 1_000;
  }
  gc();
  const mb = (process.memoryUsage().heapUsed - before) / 2 ** 20;
  close?.();
  return { calls, mb };
}

/**
 * What each resilience policy costs per call over a bare async call, alone and stacked, with
 * 0% and 1% failing calls, beside cockatiel and opossum; and the heap each stack keeps after a
 * sustained run. Backoffs are 0 so that the figures are CPU, not waiting.
 */
export async function resilienceBench(): Promise<Record<string, number | string>> {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const rows: Array<[string, number, number, number, number]> = [];
  const figures: Record<string, number | string> = {};
  let bare = [0, 0];
  for (const [name, key, variant] of variants()) {
    const ns: number[] = [];
    for (const failEvery of [0, 100]) {
      const { run, close } = variant(target(failEvery));
      // opossum with default options sorts its whole latency window on each failure: size its runs smaller.
      ns.push(await nsPerCallOf(run, name.startsWith('opossum') ? 150 : 300));
      close?.();
    }
    if (name.startsWith('bare')) bare = ns;
    const [ok = 0, failing = 0] = ns;
    rows.push([name, ok, ok - (bare[0] ?? 0), failing, failing - (bare[1] ?? 0)]);
    figures[`${key}_ns_per_call_0pct`] = Math.round(ok);
    figures[`${key}_ns_per_call_1pct`] = Math.round(failing);
  }
  console.log('Resilience policies over a bare async call (ns per call, medians of 3 sequential runs):\n');
  printTable(['variant', 'ns_0%_fail', 'overhead_0%', 'ns_1%_fail', 'overhead_1%'], rows);

  const all = new Map(variants().map(([name, key, variant]) => [name, { key, variant }]));
  const heapRows: Array<[string, number, number]> = [];
  for (const name of ['trellis whole stack', 'cockatiel stack (no rate limiter)', 'opossum, default options']) {
    const { key, variant } = all.get(name) as { key: string; variant: Variant };
    const { calls, mb } = await retainedAfter(variant, 3, gc);
    heapRows.push([name, calls, mb]);
    figures[`${key}_heap_retained_mb_after_3s`] = Number(mb.toFixed(2));
    figures[`${key}_calls_in_3s`] = calls;
  }
  console.log('\nHeap kept by the policy after 3 s of sequential calls at full speed (after a full GC):\n');
  printTable(['variant', 'calls', 'heap_retained_mb'], heapRows);
  const stack = rows.find((r) => r[0] === 'trellis whole stack');
  if (stack !== undefined) {
    console.log(
      `\ntrellis whole stack overhead: ${Math.round(stack[2])} ns per call with 0% failures, ` +
        `${Math.round(stack[4])} ns with 1% (target < 3 000 ns)`,
    );
    figures['stack_overhead_ns_per_call_0pct'] = Math.round(stack[2]);
    figures['stack_overhead_ns_per_call_1pct'] = Math.round(stack[4]);
  }
  return figures;
}
