import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ConsulKv, RuleStore, RulesWatch, type RulesEnvelope, type RulesRefused } from '@trellis/config';
import type { RegistryServer } from '@trellis/registry-server';
import { next, startServer } from './helpers.js';
import { ana, validate, type TestRules } from './rules-fixtures.js';

const envelope = (version: number, rules: unknown, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ version, author: 'ana', reason: 'by hand', time: '2026-12-02T04:30:00.000Z', rules, ...extra });

describe('RulesWatch', () => {
  let server: RegistryServer;
  let kv: ConsulKv;
  let store: RuleStore<TestRules>;
  let watch: RulesWatch<TestRules>;
  let warnings: string[];

  beforeEach(async () => {
    const started = await startServer();
    server = started.server;
    kv = new ConsulKv({ url: started.url });
    store = new RuleStore({ kv, validate });
    warnings = [];
    watch = new RulesWatch({
      kv,
      service: 'forum',
      validate,
      logger: { warn: (message) => warnings.push(message) },
      watch: { floorMs: 0 },
    });
    await watch.ready();
  });
  afterEach(async () => {
    watch.close();
    await kv.close();
    await server.close();
  });

  const applied = (accept: (e: RulesEnvelope<TestRules> | undefined) => boolean = () => true) =>
    next(watch.onApplied, accept);
  const refused = () => next(watch.onRefused);

  it('applies each version written, and undefined when the rules are deleted', async () => {
    expect(watch.current()).toBeUndefined();
    const first = applied();
    const v1 = await store.set('forum', { client: { retry: { maxAttempts: 2 } } }, ana);
    expect(await first).toEqual(v1);
    const second = applied();
    await store.set('forum', { limits: { ratePerSecond: 5 } }, ana);
    expect((await second)?.version).toBe(2);
    expect(watch.current()?.rules).toEqual({ limits: { ratePerSecond: 5 } });
    const gone = applied();
    await kv.delete('trellis/rules/forum');
    expect(await gone).toBeUndefined();
    expect(watch.current()).toBeUndefined();
  });

  it('refuses an invalid document, names the field, keeps the last good one, and logs it once', async () => {
    const first = applied();
    await store.set('forum', { client: { retry: { maxAttempts: 2 } } }, ana);
    await first;

    let refusal = refused();
    await kv.put('trellis/rules/forum', envelope(2, { client: { retry: { maxAttempts: 0 } } }));
    expect(await refusal).toEqual({
      version: 2,
      field: 'client.retry.maxAttempts',
      problem: expect.any(String),
      dryRun: false,
    });
    expect(watch.current()?.version).toBe(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('version 2: client.retry.maxAttempts');
    expect(warnings[0]).toContain('keeping version 1');

    // The same version again, spaced differently: not refused (nor logged) a second time.
    const refusals: RulesRefused[] = [];
    watch.onRefused((r) => refusals.push(r));
    await kv.put('trellis/rules/forum', ` ${envelope(2, { client: { retry: { maxAttempts: 0 } } })} `);
    refusal = refused();
    await kv.put('trellis/rules/forum', envelope(3, { client: { retyr: { maxAttempts: 2 } } }));
    expect(await refusal).toMatchObject({ version: 3, field: 'client.retyr', problem: 'unknown key' });
    expect(refusals.map((r) => r.version)).toEqual([3]);

    refusal = refused();
    await kv.put('trellis/rules/forum', '{"version": 4, "rules"');
    expect(await refusal).toMatchObject({ version: undefined, field: 'trellis/rules/forum' });
    refusal = refused();
    await kv.put('trellis/rules/forum', envelope(5, {}, { author: undefined }));
    expect(await refusal).toMatchObject({ version: 5, field: 'author' });
    refusal = refused();
    await kv.put('trellis/rules/forum', envelope(6, {}, { extra: true }));
    expect(await refusal).toMatchObject({ version: 6, field: 'extra', problem: 'unknown key' });
    expect(watch.current()?.version).toBe(1);
    expect(warnings).toHaveLength(5);

    const good = applied();
    await store.set('forum', { limits: { ratePerSecond: 1 } }, ana);
    // Numbered after the highest version the live key said it was (6), refused or not.
    expect((await good)?.version).toBe(7);
  });

  it('follows the dry-run candidate beside the live rules', async () => {
    const dry = next(watch.onDryRun);
    const candidate = await store.setDryRun('forum', { limits: { ratePerSecond: 9 } }, ana);
    expect(await dry).toEqual(candidate);
    expect(watch.dryRun()).toEqual(candidate);
    expect(watch.current()).toBeUndefined();

    const bad = refused();
    await kv.put('trellis/rules-dry-run/forum', envelope(1, { limits: { ratePerSecond: -1 } }));
    expect(await bad).toMatchObject({ version: 1, field: 'limits.ratePerSecond', dryRun: true });
    expect(watch.dryRun()).toEqual(candidate);

    const ended = next(watch.onDryRun);
    await store.clearDryRun('forum');
    expect(await ended).toBeUndefined();
    expect(watch.dryRun()).toBeUndefined();
  });
});
