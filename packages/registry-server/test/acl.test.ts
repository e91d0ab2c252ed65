import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import Consul from 'consul';
import { RegistryServer, type RegistryServerOptions } from '@trellis/registry-server';
import { closeAll, startServer, type RawReply } from './helpers.js';

const root = 'root-secret';

// The official client's error for a 403: its message is the status text (it quotes only short
// bodies), the answer is on `response`.
const forbidden = { response: { statusCode: 403 } };

const servers: RegistryServer[] = [];

async function startWithAcl(acl: RegistryServerOptions['acl'] = { enabled: true, initialManagementToken: root }) {
  const server = new RegistryServer({ logLevel: 'silent', ...(acl === undefined ? {} : { acl }) });
  servers.push(server);
  const { url, port } = await server.listen({ port: 0, host: '127.0.0.1' });
  const client = (token?: string): Consul =>
    new Consul({ host: '127.0.0.1', port, ...(token === undefined ? {} : { defaults: { token } }) });
  return { server, url, client };
}

/** A raw request; `token` goes in X-Consul-Token. */
async function call(
  method: string,
  url: string,
  options: { body?: unknown; token?: string; headers?: Record<string, string> } = {},
): Promise<RawReply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers['X-Consul-Token'] = options.token;
  const body =
    options.body === undefined
      ? {}
      : { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) };
  const res = await fetch(url, { method, headers, ...body });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

function json<T>(reply: RawReply): T {
  if (reply.status !== 200) throw new Error(`answered ${reply.status}: ${reply.text}`);
  return JSON.parse(reply.text) as T;
}

interface PolicyJson {
  ID: string;
  Name: string;
  Rules?: string;
  CreateIndex: number;
  ModifyIndex: number;
}

interface TokenJson {
  AccessorID: string;
  SecretID: string;
  Description: string;
  Policies: { ID: string; Name: string }[];
}

/** Creates a policy with the rules and a token holding it, with the management token; returns the token. */
async function tokenWith(url: string, name: string, rules: string): Promise<TokenJson> {
  const policy = json<PolicyJson>(
    await call('PUT', `${url}/v1/acl/policy`, { token: root, body: { Name: name, Rules: rules } }),
  );
  return json<TokenJson>(
    await call('PUT', `${url}/v1/acl/token`, {
      token: root,
      body: { Description: name, Policies: [{ ID: policy.ID }] },
    }),
  );
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
  await closeAll();
});

describe('ACLs off (the default)', () => {
  it('leaves every endpoint open and answers /v1/acl with 401 "ACL support disabled"', async () => {
    const { url, consul } = await startServer();
    await consul.agent.service.register({ name: 'mail', id: 'mail-1', port: 25 });
    await consul.kv.set({ key: 'a', value: '1' });
    expect(Object.keys((await consul.agent.service.list()) as object)).toEqual(['mail-1']);
    const unknownToken = await call('GET', `${url}/v1/kv/a?raw`, { token: 'whatever' });
    expect(unknownToken).toMatchObject({ status: 200, text: '1' });
    const acl = await call('PUT', `${url}/v1/acl/policy`, { body: { Name: 'p', Rules: '' } });
    expect(acl).toMatchObject({ status: 401, text: 'ACL support disabled' });
    expect(await call('GET', `${url}/v1/acl/tokens`)).toMatchObject({ status: 401, text: 'ACL support disabled' });
  });
});

describe('ACLs on', () => {
  let url: string;
  let client: (token?: string) => Consul;
  let server: RegistryServer;

  beforeEach(async () => {
    ({ url, client, server } = await startWithAcl());
  });

  it('refuses a server with ACLs on and no initial management token', () => {
    expect(() => new RegistryServer({ logLevel: 'silent', acl: { enabled: true } })).toThrow('initialManagementToken');
  });

  it('denies the anonymous token under the default deny, changing nothing', async () => {
    const register = await call('PUT', `${url}/v1/agent/service/register`, { body: { Name: 'mail', ID: 'mail-1' } });
    expect(register.status).toBe(403);
    expect(register.text).toMatch(
      /^Permission denied: token with AccessorID '00000000-0000-0000-0000-000000000002' lacks permission 'service:write' on service "mail"$/,
    );
    expect((await call('PUT', `${url}/v1/kv/a`, { body: '1' })).status).toBe(403);
    expect((await call('GET', `${url}/v1/health/service/mail`)).status).toBe(403);
    expect((await call('GET', `${url}/v1/agent/self`)).status).toBe(403);
    expect((await call('GET', `${url}/v1/acl/tokens`)).status).toBe(403);
    // Nothing was written: the management token sees an empty agent and KV.
    expect(json<object>(await call('GET', `${url}/v1/agent/services`, { token: root }))).toEqual({});
    expect((await call('GET', `${url}/v1/kv/a`, { token: root })).status).toBe(404);
  });

  it('leaves status, datacenters, the /ui page and 405s open', async () => {
    expect((await call('GET', `${url}/v1/status/leader`)).status).toBe(200);
    expect((await call('GET', `${url}/ui/`)).status).toBe(200);
    expect((await call('GET', `${url}/v1/catalog/datacenters`)).status).toBe(200);
    // A wrong method is still Consul's 405, whatever the token.
    expect((await call('POST', `${url}/v1/status/leader`)).status).toBe(405);
    expect((await call('DELETE', `${url}/v1/agent/service/register`, { token: 'unknown' })).status).toBe(405);
  });

  it('lets the management token do everything with the official client', async () => {
    const consul = client(root);
    await consul.agent.service.register({ name: 'mail', id: 'mail-1', port: 25, check: { ttl: '30s' } as never });
    await consul.agent.check.pass({ id: 'service:mail-1' });
    const entries = (await consul.health.service({ service: 'mail', passing: true })) as unknown[];
    expect(entries).toHaveLength(1);
    expect(await consul.kv.set({ key: 'config/a', value: 'x' })).toBe(true);
    expect(((await consul.kv.get({ key: 'config/a' })) as { Value: string }).Value).toBe('x');
    await consul.agent.service.deregister({ id: 'mail-1' });
    expect(await consul.agent.service.list()).toEqual({});
  });

  it('answers 403 "ACL not found" for an unknown token', async () => {
    const reply = await call('GET', `${url}/v1/catalog/services`, { token: 'no-such-secret' });
    expect(reply).toMatchObject({ status: 403, text: 'ACL not found' });
    await expect(client('no-such-secret').kv.set({ key: 'a', value: '1' })).rejects.toThrow('ACL not found');
  });

  it('lists an instance only to a token that may read its node as well as its service, as Consul does', async () => {
    await client(root).agent.service.register({ name: 'mail', id: 'mail-1', port: 25, check: { ttl: '30s' } as never });
    await client(root).agent.check.pass({ id: 'service:mail-1' });
    const serviceOnly = (await tokenWith(url, 'mail-reader', 'service "mail" { policy = "read" }')).SecretID;
    const withNodes = (
      await tokenWith(url, 'mail-and-nodes', 'service "mail" { policy = "read" }\nnode_prefix "" { policy = "read" }')
    ).SecretID;

    expect(await client(serviceOnly).health.service({ service: 'mail' })).toEqual([]);
    expect(await client(serviceOnly).catalog.service.nodes({ service: 'mail' })).toEqual([]);
    expect(await client(withNodes).catalog.service.nodes({ service: 'mail' })).toHaveLength(1);
    const listed = (await client(withNodes).health.service({ service: 'mail' })) as Array<{ Service: { ID: string } }>;
    expect(listed.map((entry) => entry.Service.ID)).toEqual(['mail-1']);
    // The shared answer a node reader got is not what the other token is given next.
    expect(await client(serviceOnly).health.service({ service: 'mail' })).toEqual([]);
  });

  describe('a token with service_prefix "users" write', () => {
    let users: Consul;
    let secret: string;

    beforeEach(async () => {
      await client(root).agent.service.register({
        name: 'mail',
        id: 'mail-1',
        port: 25,
        check: { ttl: '30s' } as never,
      });
      secret = (await tokenWith(url, 'users', 'service_prefix "users" { policy = "write" }')).SecretID;
      users = client(secret);
    });

    it('registers, heartbeats and deregisters users-* services', async () => {
      await users.agent.service.register({
        name: 'users-api',
        id: 'users-api-1',
        port: 8080,
        check: { ttl: '30s' } as never,
      });
      await users.agent.check.pass({ id: 'service:users-api-1' });
      const entries = (await client(root).health.service({ service: 'users-api', passing: true })) as unknown[];
      expect(entries).toHaveLength(1);
      await users.agent.service.deregister({ id: 'users-api-1' });
      expect(await client(root).agent.service.list()).not.toHaveProperty('users-api-1');
    });

    it('gets 403 on mail: no register, no read, no heartbeat', async () => {
      await expect(users.agent.service.register({ name: 'mail', id: 'mail-2', port: 25 })).rejects.toMatchObject(
        forbidden,
      );
      await expect(users.health.service({ service: 'mail' })).rejects.toMatchObject(forbidden);
      await expect(users.agent.check.fail({ id: 'service:mail-1' })).rejects.toMatchObject(forbidden);
      const health = (await client(root).health.checks({ service: 'mail' })) as { Status: string }[];
      expect(health.map((c) => c.Status)).toEqual(['critical']);
    });

    it('cannot deregister or overwrite a mail instance by reusing its id', async () => {
      const before = JSON.stringify(await client(root).agent.service.list());
      const deregister = await call('PUT', `${url}/v1/agent/service/deregister/mail-1`, { token: secret });
      expect(deregister.status).toBe(403);
      expect(deregister.text).toContain(`lacks permission 'service:write' on service "mail"`);
      const overwrite = await call('PUT', `${url}/v1/agent/service/register`, {
        token: secret,
        body: { Name: 'users-evil', ID: 'mail-1', Port: 6666 },
      });
      expect(overwrite.status).toBe(403);
      expect(overwrite.text).toContain('on service "mail"');
      expect(JSON.stringify(await client(root).agent.service.list())).toBe(before);
    });

    it('sees only the services it may read in the listings', async () => {
      await users.agent.service.register({ name: 'users-api', id: 'users-api-1', port: 8080 });
      expect(Object.keys(json<object>(await call('GET', `${url}/v1/catalog/services`, { token: secret })))).toEqual([
        'users-api',
      ]);
      expect(Object.keys(json<object>(await call('GET', `${url}/v1/agent/services`, { token: secret })))).toEqual([
        'users-api-1',
      ]);
      const checks = json<Record<string, { ServiceName: string }>>(
        await call('GET', `${url}/v1/agent/checks`, { token: root }),
      );
      expect(Object.values(checks).map((c) => c.ServiceName)).toContain('mail');
      expect(Object.keys(json<object>(await call('GET', `${url}/v1/agent/checks`, { token: secret })))).toEqual([]);
    });
  });

  describe('KV by prefix', () => {
    let secret: string;

    beforeEach(async () => {
      const root$ = client(root);
      await root$.kv.set({ key: 'app/web/port', value: '80' });
      await root$.kv.set({ key: 'app/db/port', value: '5432' });
      await root$.kv.set({ key: 'secret/pw', value: 'hunter2' });
      secret = (
        await tokenWith(url, 'app', 'key_prefix "app/" { policy = "read" }\nkey_prefix "app/web/" { policy = "write" }')
      ).SecretID;
    });

    it('reads under its read prefix and writes only under its write prefix', async () => {
      const app = client(secret);
      expect(((await app.kv.get({ key: 'app/db/port' })) as { Value: string }).Value).toBe('5432');
      expect(await app.kv.set({ key: 'app/web/port', value: '8080' })).toBe(true);
      await expect(app.kv.set({ key: 'app/db/port', value: '1' })).rejects.toMatchObject(forbidden);
      await expect(app.kv.get({ key: 'secret/pw' })).rejects.toMatchObject(forbidden);
      expect((await call('DELETE', `${url}/v1/kv/app?recurse`, { token: secret })).status).toBe(403);
      expect((await call('DELETE', `${url}/v1/kv/app/web/?recurse`, { token: secret })).status).toBe(200);
      const left = json<string[]>(await call('GET', `${url}/v1/kv/?keys`, { token: root }));
      expect(left).toEqual(['app/db/port', 'secret/pw']);
    });

    it('filters recursive reads and key listings to what it may read', async () => {
      expect(json<string[]>(await call('GET', `${url}/v1/kv/?keys`, { token: secret }))).toEqual([
        'app/db/port',
        'app/web/port',
      ]);
      const entries = json<{ Key: string }[]>(await call('GET', `${url}/v1/kv/?recurse`, { token: secret }));
      expect(entries.map((e) => e.Key)).toEqual(['app/db/port', 'app/web/port']);
      expect((await call('GET', `${url}/v1/kv/secret/?recurse`, { token: secret })).status).toBe(404);
    });
  });

  describe('where the token comes from', () => {
    let reader: string;

    beforeEach(async () => {
      await client(root).kv.set({ key: 'k', value: 'v' });
      reader = (await tokenWith(url, 'reader', 'key "k" { policy = "read" }')).SecretID;
    });

    it.each([
      ['?token=', { query: true }],
      ['X-Consul-Token', { header: 'x-consul-token' }],
      ['Authorization: Bearer', { header: 'authorization' }],
    ] as const)('reads it from %s', async (_where, place) => {
      const headers: Record<string, string> = {};
      if ('header' in place) headers[place.header] = place.header === 'authorization' ? `Bearer ${reader}` : reader;
      const query = 'query' in place ? `&token=${reader}` : '';
      expect(await call('GET', `${url}/v1/kv/k?raw${query}`, { headers })).toMatchObject({ status: 200, text: 'v' });
    });

    it('prefers ?token= over X-Consul-Token over Authorization: Bearer', async () => {
      const all = { 'x-consul-token': 'bogus-header', authorization: 'Bearer bogus-bearer' };
      expect((await call('GET', `${url}/v1/kv/k?raw&token=${reader}`, { headers: all })).status).toBe(200);
      expect(
        (await call('GET', `${url}/v1/kv/k?raw&token=bogus`, { headers: { 'x-consul-token': reader } })).text,
      ).toBe('ACL not found');
      const headerWins = { 'x-consul-token': reader, authorization: 'Bearer bogus' };
      expect((await call('GET', `${url}/v1/kv/k?raw`, { headers: headerWins })).status).toBe(200);
      const headerFirst = { 'x-consul-token': 'bogus', authorization: `Bearer ${reader}` };
      expect((await call('GET', `${url}/v1/kv/k?raw`, { headers: headerFirst })).text).toBe('ACL not found');
    });
  });

  describe('policy and token endpoints', () => {
    it('creates, reads, lists, updates and deletes policies and tokens', async () => {
      const policy = json<PolicyJson>(
        await call('PUT', `${url}/v1/acl/policy`, {
          token: root,
          body: { Name: 'web', Rules: 'service "web" { policy = "read" }' },
        }),
      );
      expect(policy).toMatchObject({ Name: 'web', Rules: 'service "web" { policy = "read" }' });
      expect(json<PolicyJson>(await call('GET', `${url}/v1/acl/policy/${policy.ID}`, { token: root }))).toEqual(policy);
      const names = json<PolicyJson[]>(await call('GET', `${url}/v1/acl/policies`, { token: root })).map((p) => p.Name);
      expect(names.sort()).toEqual(['global-management', 'web']);

      const token = json<TokenJson>(
        await call('PUT', `${url}/v1/acl/token`, {
          token: root,
          body: { Description: 'web reader', Policies: [{ Name: 'web' }], SecretID: 'web-secret' },
        }),
      );
      expect(token).toMatchObject({ SecretID: 'web-secret', Policies: [{ ID: policy.ID, Name: 'web' }] });
      expect(json<TokenJson>(await call('GET', `${url}/v1/acl/token/self`, { token: 'web-secret' }))).toMatchObject({
        AccessorID: token.AccessorID,
        Description: 'web reader',
      });
      expect(
        json<TokenJson>(await call('GET', `${url}/v1/acl/token/${token.AccessorID}`, { token: root })),
      ).toMatchObject({ AccessorID: token.AccessorID, SecretID: 'web-secret' });
      const accessors = json<TokenJson[]>(await call('GET', `${url}/v1/acl/tokens`, { token: root })).map(
        (t) => t.AccessorID,
      );
      expect(accessors).toContain(token.AccessorID);

      // The web token may read web, and not manage ACLs.
      expect((await call('GET', `${url}/v1/health/service/web`, { token: 'web-secret' })).status).toBe(200);
      expect((await call('GET', `${url}/v1/acl/tokens`, { token: 'web-secret' })).status).toBe(403);
      const selfPromote = await call('PUT', `${url}/v1/acl/token/${token.AccessorID}`, {
        token: 'web-secret',
        body: { Policies: [{ Name: 'global-management' }] },
      });
      expect(selfPromote.status).toBe(403);

      const updated = json<PolicyJson>(
        await call('PUT', `${url}/v1/acl/policy/${policy.ID}`, { token: root, body: { Name: 'web', Rules: '' } }),
      );
      expect(updated.ModifyIndex).toBeGreaterThan(policy.ModifyIndex);
      expect((await call('GET', `${url}/v1/health/service/web`, { token: 'web-secret' })).status).toBe(403);

      expect(await call('DELETE', `${url}/v1/acl/token/${token.AccessorID}`, { token: root })).toMatchObject({
        status: 200,
        text: 'true',
      });
      expect(await call('GET', `${url}/v1/acl/token/self`, { token: 'web-secret' })).toMatchObject({
        status: 403,
        text: 'ACL not found',
      });
      expect((await call('DELETE', `${url}/v1/acl/policy/${policy.ID}`, { token: root })).status).toBe(200);
      expect(await call('GET', `${url}/v1/acl/policy/${policy.ID}`, { token: root })).toMatchObject({
        status: 403,
        text: 'ACL not found',
      });
    });

    it('gives the anonymous token rights when it is given a policy', async () => {
      await tokenWith(url, 'unused', 'key "x" { policy = "read" }');
      const anonymous = '00000000-0000-0000-0000-000000000002';
      const reply = await call('PUT', `${url}/v1/acl/token/${anonymous}`, {
        token: root,
        body: { Description: 'Anonymous Token', Policies: [{ Name: 'unused' }] },
      });
      expect(reply.status).toBe(200);
      await client(root).kv.set({ key: 'x', value: 'open' });
      expect(await call('GET', `${url}/v1/kv/x?raw`)).toMatchObject({ status: 200, text: 'open' });
    });

    it.each([
      [
        'rules that do not parse',
        '/v1/acl/policy',
        { Name: 'p', Rules: 'service "x" { policy = "sometimes" }' },
        'invalid policy "sometimes"',
      ],
      ['an invalid policy name', '/v1/acl/policy', { Name: 'no spaces', Rules: '' }, 'invalid Name'],
      ['a body that is not JSON', '/v1/acl/policy', '{', 'not valid JSON'],
      ['a Rules that is not a string', '/v1/acl/policy', { Name: 'p', Rules: 1 }, 'Rules must be a string'],
      ['an unknown policy link', '/v1/acl/token', { Policies: [{ Name: 'nope' }] }, 'no policy named "nope"'],
      ['a SecretID already in use', '/v1/acl/token', { SecretID: root }, 'SecretID is already in use'],
    ])('answers 400 for %s, changing nothing', async (_what, path, body, message) => {
      const before = JSON.stringify(server.acl?.exportState());
      const reply = await call('PUT', `${url}${path}`, { token: root, body });
      expect(reply.status).toBe(400);
      expect(reply.text).toContain(message);
      expect(JSON.stringify(server.acl?.exportState())).toBe(before);
    });

    it('refuses to delete the built-ins', async () => {
      const policy = await call('DELETE', `${url}/v1/acl/policy/00000000-0000-0000-0000-000000000001`, { token: root });
      expect(policy.status).toBe(400);
      const anonymous = await call('DELETE', `${url}/v1/acl/token/00000000-0000-0000-0000-000000000002`, {
        token: root,
      });
      expect(anonymous.status).toBe(400);
    });
  });
});

describe('ACLs on with default allow', () => {
  it('lets the anonymous token do what no rule denies, but not manage ACLs', async () => {
    const { url, client } = await startWithAcl({ enabled: true, initialManagementToken: root, defaultPolicy: 'allow' });
    await client().agent.service.register({ name: 'web', id: 'web-1', port: 80 });
    expect((await call('GET', `${url}/v1/health/service/web`)).status).toBe(200);
    expect((await call('GET', `${url}/v1/acl/tokens`)).status).toBe(403);
    const denyDb = (await tokenWith(url, 'no-db', 'service "db" { policy = "deny" }')).SecretID;
    await expect(client(denyDb).agent.service.register({ name: 'db', port: 5432 })).rejects.toMatchObject(forbidden);
    await client(denyDb).agent.service.register({ name: 'cache', port: 6379 });
  });
});
