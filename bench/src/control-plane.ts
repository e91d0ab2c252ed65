import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ConsulKv, parseRules, RuleStore } from '@trellis/config';
import { printTable } from './measure.js';
import { startRegistryChild } from './registry-child.js';
import type { Applied } from './rules-follower.js';

const processes = 5;
const followersPerProcess = 10;
const rounds = 40;

/**
 * How fast a rule change reaches its callers: 50 apps (10 in each of 5 processes) call "users"
 * and follow `trellis/rules/users`, each with its own KV watch; the parent writes a new version
 * (a canary weight, through `RuleStore.set`, one /v1/txn) `rounds` times, and times each from the
 * write to each app's client having applied it, and to all 50 having applied it. The baseline is
 * the registry's own wake-up: a bare blocking query on the key in the parent, woken by the same write.
 */
export async function controlPlaneBench(): Promise<Record<string, number | string | null>> {
  const registry = await startRegistryChild();
  const kv = new ConsulKv({ url: registry.url });
  const store = new RuleStore({ kv, validate: parseRules });
  const children: ChildProcess[] = [];
  const applied = new Map<number, number[]>();
  const waiting = new Map<number, () => void>();
  const total = processes * followersPerProcess;
  try {
    for (let p = 0; p < processes; p++) {
      const child = fork(fileURLToPath(new URL('./rules-follower.js', import.meta.url)), {
        env: {
          ...process.env,
          TRELLIS_REGISTRY_URL: registry.url,
          FOLLOWERS: String(followersPerProcess),
          PROCESS_INDEX: String(p),
        },
      });
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`follower process ${p} not ready within 30 s`)), 30_000);
        child.on('message', (m: Applied | { type: 'ready' }) => {
          if (m.type === 'ready') {
            clearTimeout(timer);
            resolve();
            return;
          }
          const times = applied.get(m.version) ?? [];
          times.push(m.at);
          applied.set(m.version, times);
          if (times.length === total) waiting.get(m.version)?.();
        });
        child.once('exit', (code) => reject(new Error(`follower process ${p} exited (${code})`)));
      });
    }
    const perFollower: number[] = [];
    const allApplied: number[] = [];
    const kvWake: number[] = [];
    const watch = kv.watch('trellis/rules/users');
    await watch.ready(10_000);
    for (let round = 0; round < rounds; round++) {
      const weight = round % 2 === 0 ? 50 : 10;
      const before = await store.get('users');
      const version = (before?.version ?? 0) + 1;
      const all = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`version ${version} not applied by all ${total} within 10 s`)),
          10_000,
        );
        waiting.set(version, () => {
          clearTimeout(timer);
          resolve();
        });
      });
      const woke = new Promise<number>((resolve) => {
        const subscription = watch.onChange(() => {
          subscription.dispose();
          resolve(performance.timeOrigin + performance.now());
        });
      });
      const t0 = performance.timeOrigin + performance.now();
      await store.set(
        'users',
        {
          client: {
            routing: {
              default: {
                split: [
                  { subset: { version: 'v1' }, weight: 100 - weight },
                  { subset: { version: 'v2' }, weight },
                ],
              },
            },
          },
        },
        { author: 'bench', reason: `round ${round}` },
      );
      kvWake.push((await woke) - t0);
      await all;
      const times = applied.get(version) ?? [];
      for (const at of times) perFollower.push(at - t0);
      allApplied.push(Math.max(...times) - t0);
      waiting.delete(version);
      applied.delete(version);
    }
    watch.close();
    const q = (values: number[], p: number): number => {
      const sorted = [...values].sort((a, b) => a - b);
      return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
    };
    const round2 = (n: number): number => Math.round(n * 100) / 100;
    printTable(
      ['measure', 'p50 ms', 'p99 ms', 'max ms'],
      [
        ['bare KV wake-up (baseline)', round2(q(kvWake, 0.5)), round2(q(kvWake, 0.99)), round2(Math.max(...kvWake))],
        [
          'one follower applied',
          round2(q(perFollower, 0.5)),
          round2(q(perFollower, 0.99)),
          round2(Math.max(...perFollower)),
        ],
        [
          `all ${total} applied`,
          round2(q(allApplied, 0.5)),
          round2(q(allApplied, 0.99)),
          round2(Math.max(...allApplied)),
        ],
      ],
    );
    return {
      followers: total,
      processes,
      rounds,
      rule_apply_p50_ms: round2(q(allApplied, 0.5)),
      rule_apply_p99_ms: round2(q(allApplied, 0.99)),
      follower_apply_p99_ms: round2(q(perFollower, 0.99)),
      kv_wake_p99_ms: round2(q(kvWake, 0.99)),
      ratio_vs_kv_wake: round2(q(allApplied, 0.99) / q(kvWake, 0.99)),
    };
  } finally {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.disconnect();
          }),
      ),
    );
    await kv.close();
    await registry.close();
  }
}
