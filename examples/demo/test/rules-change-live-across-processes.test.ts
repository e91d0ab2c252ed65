import { ConfigError } from '@trellis/core';
import { ConsulKv, parseRules, RuleStore, RunningReport, type Rules, type RunningState } from '@trellis/config';
import { startSystem, type RunningSystem } from '../src/system.js';

// The control plane with real processes: the registry server, users 1.0.0 (users-1) and its
// canary 1.1.0 (users-2), and two callers of users, the forum and the gateway. Calls flow from
// the first test to the last; rules change under them.

const split = (canary: number): Rules => ({
  client: {
    routing: {
      default: {
        split: [
          { subset: { version: '1.0.0' }, weight: 100 - canary },
          { subset: { version: '1.1.0' }, weight: canary },
        ],
      },
    },
  },
});
const author = { author: 'test', reason: 'canary of users 1.1.0' };
const callers = ['forum', 'gateway'] as const;

describe('rules changed live across processes', () => {
  let system: RunningSystem;
  let kv: ConsulKv;
  let store: RuleStore<Rules>;
  const logs: string[] = [];
  const failures: string[] = [];
  let flowing = true;
  let traffic: Promise<void> | undefined;
  let canary = '';

  /** Which users instance answered one call made through `caller`. */
  async function servedBy(caller: (typeof callers)[number]): Promise<string> {
    if (caller === 'forum') {
      const response = await fetch(`${system.forum!.url}/threads/1`);
      const body = (await response.json()) as { authorServedBy?: string };
      if (response.status !== 200 || body.authorServedBy === undefined)
        throw new Error(`forum answered ${response.status}`);
      return body.authorServedBy;
    }
    const response = await fetch(`${system.gateway!.url}/api/users/users/1`);
    await response.arrayBuffer();
    const by = response.headers.get('x-served-by');
    if (response.status !== 200 || by === null) throw new Error(`gateway answered ${response.status}`);
    return by;
  }

  /** The share of `n` calls through each caller that the canary answered. */
  async function canaryShare(n: number): Promise<Record<string, number>> {
    const shares: Record<string, number> = {};
    for (const caller of callers) {
      let hits = 0;
      for (let i = 0; i < n; i++) if ((await servedBy(caller)) === canary) hits++;
      shares[caller] = hits / n;
    }
    return shares;
  }

  /**
   * Waits (blocking queries on trellis/running/, at most `timeoutMs`) until every caller reports
   * `expected` for the rules of users; returns how long it took.
   */
  async function callersRun(
    expected: (state: { version?: number; dryRun?: number; refused?: { version?: number } } | undefined) => boolean,
    timeoutMs = 1_000,
  ): Promise<number> {
    const started = performance.now();
    const watch = kv.watch('trellis/running/', { recurse: true });
    try {
      const done = (): boolean => {
        const entries = watch.current() ?? [];
        return callers.every((caller) =>
          entries.some((entry) => {
            const report = JSON.parse(entry.value) as RunningState;
            const users = report.rules['users'];
            const refused = report.refused['users'];
            return (
              report.service === caller &&
              expected(users === undefined ? undefined : { ...users, ...(refused === undefined ? {} : { refused }) })
            );
          }),
        );
      };
      await watch.ready(timeoutMs);
      if (done()) return performance.now() - started;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`callers did not report within ${timeoutMs} ms`)), timeoutMs);
        const subscription = watch.onChange(() => {
          if (!done()) return;
          clearTimeout(timer);
          subscription.dispose();
          resolve();
        });
      });
      return performance.now() - started;
    } finally {
      watch.close();
    }
  }

  beforeAll(async () => {
    system = await startSystem({
      services: ['forum', 'gateway'],
      mailInstances: 1,
      drainMs: 300,
      output: (line) => logs.push(line),
    });
    kv = new ConsulKv({ url: system.registry.url });
    store = new RuleStore({ kv, validate: parseRules });
    const idOf = (url: string): string => `users-127.0.0.1-${new URL(url).port}`;
    canary = idOf(system.users[1]!.url);
    // Calls flow through both callers from here to the last test; none may fail.
    traffic = (async () => {
      for (let i = 0; flowing && i < 100_000; i++) {
        for (const caller of callers) {
          try {
            await servedBy(caller);
          } catch (error) {
            failures.push(`${caller}: ${(error as Error).message}`);
          }
        }
      }
    })();
  }, 60_000);

  afterAll(async () => {
    flowing = false;
    await traffic;
    await kv?.close();
    await system?.stop();
  });

  it('moves a canary from 0 to 50% of the calls on every caller within a second', async () => {
    const zero = await store.set('users', split(0), author);
    expect(await callersRun((s) => s?.version === zero.version)).toBeLessThan(1_000);
    expect(await canaryShare(20)).toEqual({ forum: 0, gateway: 0 });

    const half = await store.set('users', split(50), author);
    expect(half.version).toBe(zero.version + 1);
    expect(await callersRun((s) => s?.version === half.version)).toBeLessThan(1_000);
    const shares = await canaryShare(60);
    for (const caller of callers) {
      expect(shares[caller]).toBeGreaterThan(0.25);
      expect(shares[caller]).toBeLessThan(0.75);
    }
    expect(failures).toEqual([]);
  }, 30_000);

  it('refuses an invalid rule: the store writes nothing, and an instance keeps the last good rules and says why', async () => {
    const before = await store.get('users');
    const invalid = { client: { routing: { default: { split: [{ subset: { version: '1.1.0' }, weight: -1 }] } } } };
    await expect(store.set('users', invalid, author)).rejects.toThrow(ConfigError);
    expect((await store.get('users'))?.version).toBe(before?.version);

    // Written past the store (by hand, another tool): each caller refuses it and says so.
    const version = (before?.version ?? 0) + 1;
    const envelope = { version, author: 'someone', reason: 'by hand', time: new Date().toISOString(), rules: invalid };
    await kv.put('trellis/rules/users', JSON.stringify(envelope));
    await callersRun((s) => s?.refused?.version === version && s?.version === before?.version);
    const status = (await (await fetch(`${system.forum!.url}/trellis`)).json()) as {
      rules: Array<{ service: string; version?: number; refused?: { version: number; field: string } }>;
    };
    expect(status.rules.find((r) => r.service === 'users')).toMatchObject({
      version: before?.version,
      refused: { version, field: 'client.routing.default.split[0].weight' },
    });
    const shares = await canaryShare(40);
    for (const caller of callers) expect(shares[caller]).toBeGreaterThan(0.15);
    expect(logs.some((line) => line.includes(`version ${version} refused`))).toBe(true);

    // Put the last good document back, as it was.
    await kv.put('trellis/rules/users', JSON.stringify(before));
    await callersRun((s) => s?.version === before?.version && s?.refused === undefined);
    expect(failures).toEqual([]);
  }, 30_000);

  it('rolls back: the split before returns on every caller', async () => {
    const rolled = await store.rollback('users', { author: 'test', reason: 'canary errors' });
    expect(rolled.rules).toEqual(split(0));
    expect(await callersRun((s) => s?.version === rolled.version)).toBeLessThan(1_000);
    expect(await canaryShare(20)).toEqual({ forum: 0, gateway: 0 });
    const history = await store.history('users');
    expect(history.slice(0, 3).map((h) => h.version)).toEqual([rolled.version, rolled.version - 1, rolled.version - 2]);
    expect(failures).toEqual([]);
  }, 30_000);

  it('runs a dry run beside the live rules: no call changes, the reroutes it would make are counted', async () => {
    const candidate = await store.setDryRun('users', split(50), { author: 'test', reason: 'would 50% hurt?' });
    await callersRun((s) => s?.dryRun === candidate.version);
    expect(await canaryShare(40)).toEqual({ forum: 0, gateway: 0 });
    const metrics = await (await fetch(`${system.forum!.url}/metrics`)).text();
    const rerouted = /^trellis_rules_dry_run_total\{[^}]*service="users"[^}]*effect="route"[^}]*\} (\d+)/m.exec(
      metrics,
    );
    expect(Number(rerouted?.[1] ?? 0)).toBeGreaterThan(0);
    await store.clearDryRun('users');
    await callersRun((s) => s !== undefined && s.dryRun === undefined);
    expect(failures).toEqual([]);
  }, 30_000);

  it('keeps the last good rules and every call going while the registry is down', async () => {
    const reports = await RunningReport.list(kv, { service: 'forum' });
    expect(reports).toHaveLength(1);
    await system.registry.stop('SIGKILL');
    expect(await canaryShare(30)).toEqual({ forum: 0, gateway: 0 });
    flowing = false;
    await traffic;
    expect(failures).toEqual([]);
  }, 30_000);
});
