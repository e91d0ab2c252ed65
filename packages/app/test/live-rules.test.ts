import type { TelemetryEvent } from '@trellis/core';
import { ConsulKv, parseRules, RuleStore, RunningReport, type Rules } from '@trellis/config';
import { RegistryServer } from '@trellis/registry-server';
import { TrellisApp, type AppOptions, type TrellisStatus } from '@trellis/app';
import { LogCollector } from './log-collector.js';

// Apps on a real registry server, following `trellis/rules/<service>` as they do in production:
// two users instances (1.0.0 and its canary 1.1.0) and a forum calling them.

const toVersion = (version: string): Rules => ({ client: { routing: { default: { to: { version } } } } });
const meta = { author: 'test', reason: 'a test' };

describe('an app following the rules in the registry', () => {
  let server: RegistryServer;
  let registryUrl: string;
  let kv: ConsulKv;
  let store: RuleStore<Rules>;
  const apps: TrellisApp[] = [];

  async function start(options: Partial<AppOptions> & { service: string }): Promise<TrellisApp> {
    const app = new TrellisApp({ registryUrl, logLevel: 'silent', drainMs: 0, ...options });
    apps.push(app);
    await app.start();
    return app;
  }

  async function users(version: string): Promise<TrellisApp> {
    const app = new TrellisApp({ service: 'users', registryUrl, version, logLevel: 'silent', drainMs: 0 });
    app.http.get('/who', async () => ({ id: app.instance?.id, version }));
    apps.push(app);
    await app.start();
    return app;
  }

  /** The next event of `type` about `service` on the app's telemetry. */
  function next(app: TrellisApp, type: TelemetryEvent['type'], service: string): Promise<TelemetryEvent> {
    return new Promise((resolve) => {
      const subscription = app.telemetry.onEvent((event) => {
        if (event.type !== type || !('service' in event) || event.service !== service) return;
        subscription.dispose();
        resolve(event);
      });
    });
  }

  /** Resolves once the value of `key` satisfies `done`, watching it (at most 5 s). */
  async function reported(key: string, done: (value: string) => boolean): Promise<void> {
    const watch = kv.watch(key);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${key} did not change as expected within 5 s`)), 5_000);
        const check = (): void => {
          if (!done(watch.current()?.[0]?.value ?? '')) return;
          clearTimeout(timer);
          resolve();
        };
        watch.onChange(check);
        void watch.ready(5_000).then(check, reject);
      });
    } finally {
      watch.close();
    }
  }

  async function versions(forum: TrellisApp, n: number): Promise<string[]> {
    const seen: string[] = [];
    for (let i = 0; i < n; i++) seen.push((await forum.client('users').get<{ version: string }>('/who')).version);
    return [...new Set(seen)].sort();
  }

  beforeAll(async () => {
    server = new RegistryServer({ logLevel: 'silent' });
    registryUrl = (await server.listen({ port: 0, host: '127.0.0.1' })).url;
    kv = new ConsulKv({ url: registryUrl });
    store = new RuleStore({ kv, validate: parseRules });
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
    await kv.delete('trellis/', { recurse: true });
  });
  afterAll(async () => {
    await kv.close();
    await server.close();
  });

  it('applies a new version to its clients at once, reports it, and returns to its code when it is deleted', async () => {
    await users('1.0.0');
    await users('1.1.0');
    // Round robin, so that both instances answer while no rule routes: P2C may favour one.
    const forum = await start({ service: 'forum', calls: ['users'], client: { strategy: 'round-robin' } });
    expect(await versions(forum, 10)).toEqual(['1.0.0', '1.1.0']);

    const applied = next(forum, 'rules-applied', 'users');
    const written = await store.set('users', toVersion('1.1.0'), meta);
    expect(await applied).toMatchObject({ service: 'users', version: written.version });
    expect(await versions(forum, 10)).toEqual(['1.1.0']);

    const status = (await (await fetch(`http://127.0.0.1:${forum.instance?.port}/trellis`)).json()) as TrellisStatus;
    expect(status.rules).toContainEqual({
      service: 'users',
      version: written.version,
      author: 'test',
      reason: 'a test',
      dryRun: undefined,
      refused: undefined,
    });
    // The report is written a moment after the change (debounced): wait for it on a blocking query.
    await reported(`trellis/running/${forum.instance?.id}`, (value) =>
      value.includes(`"users":{"version":${written.version}}`),
    );
    const reports = await RunningReport.list(kv, { service: 'forum' });
    expect(reports).toEqual([
      expect.objectContaining({
        instance: forum.instance?.id,
        rules: expect.objectContaining({ users: { version: written.version } }),
      }),
    ]);

    const removed = next(forum, 'rules-applied', 'users');
    await kv.delete('trellis/rules/users');
    await removed;
    expect(await versions(forum, 10)).toEqual(['1.0.0', '1.1.0']);
  });

  it('keeps the last good rules when a document is refused, logs it once, counts it and shows it', async () => {
    await users('1.0.0');
    await users('1.1.0');
    const logs = new LogCollector();
    const forum = await start({ service: 'forum', calls: ['users'], logLevel: 'info', logDestination: logs });
    forum.client('users');
    const good = await store.set('users', toVersion('1.1.0'), meta);
    await logs.next(new RegExp(`rules of "users" version ${good.version} applied`));

    const bad = {
      ...good,
      version: good.version + 1,
      rules: { client: { routing: { default: { to: { version: '' } } } } },
    };
    await kv.put('trellis/rules/users', JSON.stringify(bad));
    await logs.next(new RegExp(`version ${bad.version} refused`));
    // The same refused document again (a second write) is not logged again.
    await kv.put('trellis/rules/users', JSON.stringify(bad));
    await kv.put('trellis/rules/users', JSON.stringify(bad));
    expect(await versions(forum, 10)).toEqual(['1.1.0']);
    expect(logs.matching(/refused/)).toHaveLength(1);
    expect(logs.matching(/refused/)[0]?.msg).toContain('client.routing.default.to.version');

    const metrics = await (await fetch(`http://127.0.0.1:${forum.instance?.port}/metrics`)).text();
    expect(metrics).toMatch(/^trellis_rules_refusals_total\{service="users"\} [1-9]/m);
    expect(metrics).toMatch(new RegExp(`^trellis_rules_version\\{service="users"\\} ${good.version}$`, 'm'));
    const status = forum.describe();
    expect(status.rules?.find((r) => r.service === 'users')).toMatchObject({
      version: good.version,
      refused: { version: bad.version, field: 'client.routing.default.to.version' },
    });
  });

  it('refuses as a whole a version one of its clients cannot apply, naming the field', async () => {
    await users('1.0.0');
    const logs = new LogCollector();
    const forum = await start({
      service: 'forum',
      calls: ['users'],
      logLevel: 'info',
      logDestination: logs,
      client: { stack: (stack) => stack.remove('retry') },
    });
    forum.client('users');
    const refused = next(forum, 'rules-refused', 'users');
    const written = await store.set('users', { client: { retry: { maxAttempts: 2 } } }, meta);
    expect(await refused).toMatchObject({ version: written.version, field: 'client.retry' });
    expect(forum.describe().rules?.find((r) => r.service === 'users')?.version).toBeUndefined();
  });

  it('limits what it serves by its own rules (429), and counts what a dry run of limits would refuse', async () => {
    const logs = new LogCollector();
    const mail = await start({ service: 'mail', logLevel: 'info', logDestination: logs });
    const url = `http://127.0.0.1:${mail.instance?.port}`;

    const written = await store.set('mail', { limits: { rate: { ratePerSecond: 0.001, burst: 2 } } }, meta);
    await logs.next(new RegExp(`rules of "mail" version ${written.version} applied`));
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await fetch(`${url}/info`)).status);
    // /info is a health route: exempt.
    expect(statuses).toEqual([200, 200, 200, 200]);
    const served: number[] = [];
    for (let i = 0; i < 4; i++) served.push((await fetch(`${url}/nothing-here`)).status);
    expect(served).toEqual([404, 404, 429, 429]);

    await store.set('mail', {}, meta);
    const dry = await store.setDryRun('mail', { limits: { rate: { ratePerSecond: 0.001, burst: 1 } } }, meta);
    await logs.next(new RegExp(`dry run of "mail" rules version ${dry.version}`));
    const unlimited: number[] = [];
    for (let i = 0; i < 3; i++) unlimited.push((await fetch(`${url}/nothing-here`)).status);
    expect(unlimited).toEqual([404, 404, 404]);
    expect(mail.ruleLimits.describe().dryRun?.wouldRefuse).toEqual({ rate: 2, concurrency: 0 });
  });
});
