import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConsulKv, parseRules, RuleStore } from '@trellis/config';
import { RegistryServer } from '@trellis/registry-server';
import { appOptionsFromEnv, TrellisApp, type AppOptions } from '@trellis/app';

// docs/growing-past-one-machine.md gives the ACL policy of a service that calls others, for
// users moving to a Consul cluster with ACLs on. The registry server's ACLs follow Consul's rules,
// so the policy is checked here as users would apply it: an app holding only that token must do
// all it does, and no more.
const page = readFileSync(fileURLToPath(new URL('../../../docs/growing-past-one-machine.md', import.meta.url)), 'utf8');
const forumPolicy = /```hcl\n([\s\S]*?)```/.exec(page)?.[1] ?? '';
const root = 'root-secret';
const meta = { author: 'test', reason: 'a test' };

describe('the ACL policy of a service in docs/growing-past-one-machine.md', () => {
  let server: RegistryServer;
  let url: string;
  let kv: ConsulKv;
  const apps: TrellisApp[] = [];

  async function start(
    options: Partial<AppOptions> & { service: string },
    routes: (app: TrellisApp) => void = () => {},
  ): Promise<TrellisApp> {
    const app = new TrellisApp({ logLevel: 'silent', drainMs: 0, trellisPage: false, registryUrl: url, ...options });
    apps.push(app);
    routes(app);
    await app.start();
    return app;
  }

  async function tokenWith(rules: string): Promise<string> {
    const put = async (path: string, body: unknown): Promise<Record<string, string>> => {
      const response = await fetch(`${url}${path}`, {
        method: 'PUT',
        headers: { 'X-Consul-Token': root },
        body: JSON.stringify(body),
      });
      if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
      return (await response.json()) as Record<string, string>;
    };
    const policy = await put('/v1/acl/policy', { Name: 'forum', Rules: rules });
    return (await put('/v1/acl/token', { Policies: [{ ID: policy.ID }] })).SecretID ?? '';
  }

  beforeAll(async () => {
    server = new RegistryServer({
      logLevel: 'silent',
      acl: { enabled: true, initialManagementToken: root, defaultPolicy: 'deny' },
    });
    url = (await server.listen({ port: 0, host: '127.0.0.1' })).url;
    kv = new ConsulKv({ url, token: root });
  });
  afterAll(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
    await kv.close();
    await server.close();
  });

  it('lets the app register, find the services it calls, follow its rules and report them, and not write rules', async () => {
    expect(forumPolicy).toContain('service "forum"');
    const users = await start({ service: 'users', registryToken: root }, (app) =>
      app.http.get('/who', async () => ({ id: app.instance?.id })),
    );
    const store = new RuleStore({ kv, validate: parseRules });
    const usersRules = await store.set('users', { client: { retry: { maxAttempts: 2 } } }, meta);
    const forumRules = await store.set('forum', { limits: { rate: { ratePerSecond: 100, burst: 10 } } }, meta);

    const secret = await tokenWith(forumPolicy);
    const forum = await start({
      service: 'forum',
      calls: ['users'],
      ...appOptionsFromEnv({ TRELLIS_REGISTRY_TOKEN: secret }),
    });

    expect(await forum.client('users').get<{ id: string }>('/who')).toEqual({ id: users.instance?.id });
    expect(forum.rules?.describe()).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ service: 'users', version: usersRules.version, refused: undefined }),
        expect.objectContaining({ service: 'forum', version: forumRules.version, refused: undefined }),
      ]),
    );
    // The running report is written a moment after the rules apply (debounced): a blocking read waits for it.
    const key = `trellis/running/${forum.instance?.id}`;
    let view = await kv.query(key);
    for (let i = 0; i < 10 && view.entries.length === 0; i++)
      view = await kv.query(key, { index: view.index, waitMs: 2_000 });
    expect(view.entries[0]?.value).toContain(`"users":{"version":${usersRules.version}}`);

    const asForum = new ConsulKv({ url, token: secret });
    try {
      await expect(asForum.put('trellis/rules/users', '{}')).rejects.toMatchObject({ status: 403 });
    } finally {
      await asForum.close();
    }
  });
});
