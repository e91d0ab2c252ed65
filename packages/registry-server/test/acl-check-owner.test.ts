import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import Consul from 'consul';
import { RegistryServer } from '@trellis/registry-server';

const root = 'root-secret';
const forbidden = { response: { statusCode: 403 } };

let server: RegistryServer;
let url: string;
let client: (token: string) => Consul;
let policies = 0;

/** A token holding one policy with `rules`, made with the management token. */
async function tokenWith(rules: string): Promise<string> {
  const admin = { 'X-Consul-Token': root };
  const policy = (await (
    await fetch(`${url}/v1/acl/policy`, {
      method: 'PUT',
      headers: admin,
      body: JSON.stringify({ Name: `policy-${++policies}`, Rules: rules }),
    })
  ).json()) as { ID: string };
  const token = (await (
    await fetch(`${url}/v1/acl/token`, {
      method: 'PUT',
      headers: admin,
      body: JSON.stringify({ Policies: [{ ID: policy.ID }] }),
    })
  ).json()) as { SecretID: string };
  return token.SecretID;
}

/** The checks of a service as the management token sees them: id to status. */
async function checksOf(service: string): Promise<Record<string, string>> {
  const checks = (await client(root).health.checks({ service })) as { CheckID: string; Status: string }[];
  return Object.fromEntries(checks.map((c) => [c.CheckID, c.Status]));
}

beforeEach(async () => {
  server = new RegistryServer({ logLevel: 'silent', acl: { enabled: true, initialManagementToken: root } });
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${port}`;
  client = (token) => new Consul({ host: '127.0.0.1', port, defaults: { token } });
  // mail is down: its TTL check is critical until someone heartbeats it.
  await client(root).agent.service.register({ name: 'mail', id: 'mail-1', port: 25, check: { ttl: '30s' } as never });
  await client(root).agent.check.register({ name: 'disk', id: 'node-disk', ttl: '30s' } as never);
});

afterEach(async () => {
  await server.close();
});

describe('a check ID under ACLs', () => {
  it("refuses a service registration that takes another service's check by its ID, changing nothing", async () => {
    const users = client(await tokenWith('service_prefix "users" { policy = "write" }'));
    const taking = users.agent.service.register({
      name: 'users',
      id: 'users-2',
      port: 80,
      check: { checkid: 'service:mail-1', ttl: '30s' } as never,
    });
    await expect(taking).rejects.toMatchObject(forbidden);
    await expect(taking).rejects.toMatchObject({
      response: { body: expect.stringContaining(`lacks permission 'service:write' on service "mail"`) as unknown },
    });
    expect(await checksOf('mail')).toEqual({ 'service:mail-1': 'critical' });
    expect(await client(root).agent.service.list()).not.toHaveProperty('users-2');
    // Dead mail still counts as dead.
    expect(await client(root).health.service({ service: 'mail', passing: true })).toEqual([]);
  });

  it("refuses a check registration that moves another service's check, or the node's, to its own service", async () => {
    const users = client(await tokenWith('service_prefix "users" { policy = "write" }'));
    await users.agent.service.register({ name: 'users', id: 'users-1', port: 80 });
    await expect(
      users.agent.check.register({ name: 'x', id: 'service:mail-1', serviceid: 'users-1', ttl: '30s' } as never),
    ).rejects.toMatchObject(forbidden);
    await expect(
      users.agent.check.register({ name: 'x', id: 'node-disk', serviceid: 'users-1', ttl: '30s' } as never),
    ).rejects.toMatchObject(forbidden);
    expect(await checksOf('mail')).toEqual({ 'service:mail-1': 'critical' });
    expect(await checksOf('users')).toEqual({});
    const nodeChecks = (await client(root).agent.check.list()) as Record<string, { ServiceID: string }>;
    expect(nodeChecks['node-disk']?.ServiceID).toBe('');
  });

  it('lets a token with write on both services move the check', async () => {
    const both = client(
      await tokenWith('service_prefix "users" { policy = "write" }\nservice "mail" { policy = "write" }'),
    );
    await both.agent.service.register({
      name: 'users',
      id: 'users-2',
      port: 80,
      check: { checkid: 'service:mail-1', ttl: '30s' } as never,
    });
    expect(await checksOf('mail')).toEqual({});
    expect(await checksOf('users')).toEqual({ 'service:mail-1': 'critical' });
  });
});
