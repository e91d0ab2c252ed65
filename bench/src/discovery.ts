import type { ServiceInstance } from '@trellis/core';
import { ConsulRegistry, Discovery, type Registration } from '@trellis/registry';
import { median, printTable } from './measure.js';
import { startRegistryChild, type RegistryChild } from './registry-child.js';

const service = 'bench-users';
const existing = 20;
const rounds = 200;
const fanOut = 50;
const fanOutRounds = 50;
const pollRounds = 20;

/** Latencies in milliseconds, sorted, with their quantiles. */
interface Spread {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/**
 * How fast a change in the registry reaches callers' caches: a registry server in a child
 * process, instances registered and deregistered through one ConsulRegistry, and Discovery
 * caches (blocking-query watches) in this process. Each round waits until the watch's query is
 * held, so that it measures propagation, not the floor between queries. Baselines in the same
 * run: the registration's own round trip, and a cache that polls every second (what Trellis
 * did before; Eureka's client polls every 30 s).
 */
export async function discoveryBench(): Promise<Record<string, number | string>> {
  const child = await startRegistryChild();
  const registrar = new ConsulRegistry({ url: child.url });
  const watcher = new ConsulRegistry({ url: child.url });
  try {
    for (let i = 0; i < existing; i++) await registrar.register(registration(`existing-${i}`, 5_000 + i));
    const discovery = new Discovery(watcher);
    await discovery.instances(service);

    // One caller: register, wait for its cache to hold it; deregister, wait for removal.
    const added: number[] = [];
    const removed: number[] = [];
    const registerRtt: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const id = `new-${r}`;
      await child.waitForHeldQueries(1, 5_000);
      const appeared = until(discovery, (ids) => ids.has(id));
      const sent = performance.now();
      await registrar.register(registration(id, 6_000 + r));
      registerRtt.push(performance.now() - sent);
      added.push((await appeared) - sent);

      await child.waitForHeldQueries(1, 5_000);
      const gone = until(discovery, (ids) => !ids.has(id));
      const left = performance.now();
      await registrar.deregister(id);
      removed.push((await gone) - left);
    }
    await discovery.close();

    // Many callers in one process: time until the last of `fanOut` caches holds the instance.
    const caches = Array.from({ length: fanOut }, () => new Discovery(watcher));
    await Promise.all(caches.map((d) => d.instances(service)));
    const fanned: number[] = [];
    for (let r = 0; r < fanOutRounds; r++) {
      const id = `fan-${r}`;
      await child.waitForHeldQueries(fanOut, 5_000);
      const all = Promise.all(caches.map((d) => until(d, (ids) => ids.has(id))));
      const sent = performance.now();
      await registrar.register(registration(id, 7_000 + r));
      fanned.push(Math.max(...(await all)) - sent);
      await child.waitForHeldQueries(fanOut, 5_000);
      const allGone = Promise.all(caches.map((d) => until(d, (ids) => !ids.has(id))));
      await registrar.deregister(id);
      await allGone;
    }
    await Promise.all(caches.map((d) => d.close()));

    const polled = await pollingBaseline(child, registrar);

    const add = spread(added);
    const remove = spread(removed);
    const rtt = spread(registerRtt);
    const fan = spread(fanned);
    const poll = spread(polled);
    console.log(
      `\ndiscovery: ${existing} instances of "${service}" registered; ${rounds} rounds of register + deregister\n`,
    );
    printTable(
      ['figure', 'p50 ms', 'p99 ms', 'max ms', 'target'],
      [
        ['registration round trip (baseline)', rtt.p50, rtt.p99, rtt.max, '-'],
        ['register -> in the cache', add.p50, add.p99, add.max, 'p99 < 100'],
        ['deregister -> out of the cache', remove.p50, remove.p99, remove.max, 'p99 < 100'],
        [`register -> in all ${fanOut} caches (${fanOutRounds} rounds)`, fan.p50, fan.p99, fan.max, '-'],
        [`poll every 1 s (baseline, ${pollRounds} rounds)`, poll.p50, poll.p99, poll.max, '-'],
      ],
    );
    const ratio = add.p50 / rtt.p50;
    console.log(
      `\nratio_vs_register_rtt (p50): ${ratio.toFixed(2)}; polling every second is ${(poll.p50 / add.p50).toFixed(0)}x slower at p50.` +
        '\nFor comparison: Eureka defaults take 30 to 90 s, Spring Cloud LoadBalancer caches for 35 s.',
    );
    return {
      instances: existing,
      rounds,
      register_rtt_p50_ms: round(rtt.p50),
      added_p50_ms: round(add.p50),
      added_p99_ms: round(add.p99),
      removed_p50_ms: round(remove.p50),
      removed_p99_ms: round(remove.p99),
      fan_out_caches: fanOut,
      fan_out_p50_ms: round(fan.p50),
      fan_out_p99_ms: round(fan.p99),
      poll_1s_p50_ms: round(poll.p50),
      ratio_vs_register_rtt: round(ratio),
    };
  } finally {
    await registrar.close();
    await watcher.close();
    await child.close();
  }
}

// The cache Trellis had before watches: list() every second.
async function pollingBaseline(child: RegistryChild, registrar: ConsulRegistry): Promise<number[]> {
  const poller = new ConsulRegistry({ url: child.url });
  let ids = new Set<string>();
  let waiting: { id: string; resolve: (at: number) => void } | undefined;
  const timer = setInterval(() => {
    void poller.list(service).then((list) => {
      ids = new Set(list.map((i) => i.id));
      if (waiting !== undefined && ids.has(waiting.id)) waiting.resolve(performance.now());
    });
  }, 1_000);
  const latencies: number[] = [];
  try {
    for (let r = 0; r < pollRounds; r++) {
      const id = `poll-${r}`;
      const seen = new Promise<number>((resolve) => (waiting = { id, resolve }));
      const sent = performance.now();
      await registrar.register(registration(id, 8_000 + r));
      latencies.push((await seen) - sent);
      await registrar.deregister(id);
    }
  } finally {
    clearInterval(timer);
    await poller.close();
  }
  return latencies;
}

/** Resolves with the time at which the cache's instances of the service first satisfy `holds`. */
function until(discovery: Discovery, holds: (ids: ReadonlySet<string>) => boolean): Promise<number> {
  return new Promise((resolve) => {
    const listener = discovery.onChanged(({ service: changed, instances }) => {
      if (changed !== service || !holds(idsOf(instances))) return;
      listener.dispose();
      resolve(performance.now());
    });
  });
}

function idsOf(instances: readonly ServiceInstance[]): ReadonlySet<string> {
  return new Set(instances.map((i) => i.id));
}

function registration(id: string, port: number): Registration {
  return {
    instance: {
      id,
      service,
      address: '127.0.0.1',
      port,
      tags: ['http'],
      meta: { version: '1.0.0', weight: 1, labels: {} },
    },
    ttlMs: 600_000,
    deregisterAfterMs: 600_000,
  };
}

function spread(values: readonly number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return { p50: median(sorted), p99: at(0.99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
