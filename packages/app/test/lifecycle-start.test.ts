import { createServer } from 'node:net';
import { RegistryRejectedError } from '@trellis/core';
import { ConsulRegistry } from '@trellis/registry';
import { RegistryServer } from '@trellis/registry-server';
import { ConsulKv, parseRules, RuleStore } from '@trellis/config';
import { appOptionsFromEnv, TrellisApp, type AppOptions } from '@trellis/app';
import { LogCollector } from './log-collector.js';

/** A port nothing listens on now: bound on 0 by the system, then let go. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

describe('starting a TrellisApp', () => {
  const apps: TrellisApp[] = [];
  const servers: RegistryServer[] = [];

  function app(options: Partial<AppOptions>, logs: LogCollector): TrellisApp {
    const created = new TrellisApp({
      service: 'users',
      logLevel: 'info',
      logDestination: logs,
      drainMs: 0,
      trellisPage: false,
      ...options,
    });
    apps.push(created);
    return created;
  }
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('starts while the registry is unreachable, warns once, and is not ready', async () => {
    const logs = new LogCollector();
    const users = app({ registryUrl: `http://127.0.0.1:${await freePort()}` }, logs);
    const { url } = await users.start();

    expect(users.state).toBe('running');
    expect((await fetch(`${url}/health/live`)).status).toBe(200);
    const ready = await fetch(`${url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({
      status: 'DOWN',
      checks: { lifecycle: { status: 'UP' }, registration: { status: 'DOWN', instance: users.instance?.id } },
    });
    expect(logs.warnings.map((l) => l.msg)).toEqual([
      expect.stringMatching(
        /^registry unreachable at start \(.+\): serving, not ready, registering again with backoff$/,
      ),
    ]);
  });

  it('registers and becomes ready, without a restart, once a registry started after it answers', async () => {
    const port = await freePort();
    const logs = new LogCollector();
    const users = app({ registryUrl: `http://127.0.0.1:${port}` }, logs);
    users.http.get('/users/1', async () => ({ id: '1' }));
    const { url, instance } = await users.start();
    expect((await fetch(`${url}/health/ready`)).status).toBe(503);

    const server = new RegistryServer({ logLevel: 'silent' });
    servers.push(server);
    await server.listen({ port, host: '127.0.0.1' });
    await logs.next(/^registered as /);

    const ready = await fetch(`${url}/health/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      status: 'UP',
      checks: {
        lifecycle: { status: 'UP', state: 'running' },
        registration: { status: 'UP', instance: instance.id },
      },
    });
    const reader = new ConsulRegistry({ url: `http://127.0.0.1:${port}` });
    try {
      expect((await reader.list('users')).map((i) => i.id)).toEqual([instance.id]);
    } finally {
      await reader.close();
    }
    expect(logs.matching(/^registered as /)).toHaveLength(1);
    expect(logs.warnings).toHaveLength(1);
  });

  it('registers and follows its rules with the token of TRELLIS_REGISTRY_TOKEN on a registry with ACLs', async () => {
    const server = new RegistryServer({
      logLevel: 'silent',
      acl: { enabled: true, initialManagementToken: 'root-secret', defaultPolicy: 'deny' },
    });
    servers.push(server);
    const { url } = await server.listen({ port: 0, host: '127.0.0.1' });
    const kv = new ConsulKv({ url, token: 'root-secret' });
    const reader = new ConsulRegistry({ url, token: 'root-secret' });
    try {
      const rules = { limits: { rate: { ratePerSecond: 100, burst: 10 } } };
      const written = await new RuleStore({ kv, validate: parseRules }).set('users', rules, {
        author: 'test',
        reason: 'a test',
      });
      const users = app(
        { registryUrl: url, ...appOptionsFromEnv({ TRELLIS_REGISTRY_TOKEN: 'root-secret' }) },
        new LogCollector(),
      );
      const { instance } = await users.start();

      expect((await reader.list('users')).map((i) => i.id)).toEqual([instance.id]);
      expect(users.rules?.describe()).toContainEqual(
        expect.objectContaining({ service: 'users', version: written.version }),
      );
    } finally {
      await reader.close();
      await kv.close();
    }
  });

  it('fails start, and closes, when the registry refuses the registration', async () => {
    const server = new RegistryServer({
      logLevel: 'silent',
      acl: { enabled: true, initialManagementToken: 'root-secret', defaultPolicy: 'deny' },
    });
    servers.push(server);
    const { url } = await server.listen({ port: 0, host: '127.0.0.1' });
    const users = app({ registryUrl: url }, new LogCollector());

    await expect(users.start()).rejects.toBeInstanceOf(RegistryRejectedError);
    expect(users.state).toBe('closed');
    expect(users.http.server.listening).toBe(false);
  });
});
