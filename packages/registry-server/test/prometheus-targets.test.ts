import { afterEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '@trellis/core';
import { prometheusTargetsPath, RegistryServer, type TargetGroup } from '@trellis/registry-server';
import { closeAll, get, put, startServer, testNodeName, type Running } from './helpers.js';

afterEach(closeAll);

async function targets(url: string, query = '', headers: Record<string, string> = {}): Promise<TargetGroup[]> {
  const reply = await fetch(`${url}${prometheusTargetsPath}${query}`, { headers });
  const body = await reply.text();
  if (reply.status !== 200) throw new Error(`answered ${reply.status}: ${body}`);
  // Prometheus refuses an HTTP SD answer of any other content type.
  expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
  return JSON.parse(body) as TargetGroup[];
}

const byInstance = (groups: readonly TargetGroup[], id: string): TargetGroup | undefined =>
  groups.find((g) => g.labels['instance'] === id);

/** users-1 passing with tags and meta, users-2 critical, mail-1 passing on another node. */
async function populate({ consul, url }: Running): Promise<void> {
  await consul.agent.service.register({
    name: 'users',
    id: 'users-1',
    address: '127.0.0.1',
    port: 4001,
    tags: ['v2', 'eu'],
    meta: { version: '2.1.0', 'app-zone': 'eu-1', metrics_path: '/internal/metrics' },
    check: { ttl: '10s', status: 'passing' } as never,
  });
  await consul.agent.service.register({
    name: 'users',
    id: 'users-2',
    address: '127.0.0.1',
    port: 4002,
    tags: ['v2'],
    check: { ttl: '10s' } as never,
  });
  const registered = await put(
    `${url}/v1/catalog/register`,
    JSON.stringify({
      Node: 'box-2',
      Address: '127.0.0.2',
      NodeMeta: { rack: 'r7' },
      Service: { ID: 'mail-1', Service: 'mail', Port: 4100 },
    }),
  );
  expect(registered.status).toBe(200);
}

describe(`GET ${prometheusTargetsPath} (Prometheus HTTP service discovery)`, () => {
  it('lists every instance as one group, with job, instance, its address and the labels of Prometheus’s Consul discovery', async () => {
    const running = await startServer(new ManualClock());
    await populate(running);
    const groups = await targets(running.url);

    expect(byInstance(groups, 'users-1')).toEqual({
      targets: ['127.0.0.1:4001'],
      labels: {
        job: 'users',
        instance: 'users-1',
        __metrics_path__: '/internal/metrics',
        __meta_consul_service: 'users',
        __meta_consul_service_id: 'users-1',
        __meta_consul_service_address: '127.0.0.1',
        __meta_consul_service_port: '4001',
        __meta_consul_tags: ',v2,eu,',
        __meta_consul_service_metadata_version: '2.1.0',
        __meta_consul_service_metadata_app_zone: 'eu-1',
        __meta_consul_service_metadata_metrics_path: '/internal/metrics',
        __meta_consul_node: testNodeName,
        __meta_consul_address: '127.0.0.1',
        __meta_consul_dc: 'dc1',
        __meta_consul_health: 'passing',
        // The server's own node meta, as Consul has it.
        __meta_consul_metadata_consul_network_segment: '',
      },
    });
    expect(byInstance(groups, 'users-2')?.labels['__meta_consul_health']).toBe('critical');
    // No metrics_path meta: Prometheus's default path.
    expect(byInstance(groups, 'users-2')?.labels['__metrics_path__']).toBeUndefined();
    // A service with no address of its own is reached at its node's.
    expect(byInstance(groups, 'mail-1')).toMatchObject({
      targets: ['127.0.0.2:4100'],
      labels: {
        job: 'mail',
        __meta_consul_node: 'box-2',
        __meta_consul_address: '127.0.0.2',
        __meta_consul_metadata_rack: 'r7',
        __meta_consul_tags: '',
      },
    });
  });

  it('lists the server itself as the consul service, at the address the request reached it on', async () => {
    const running = await startServer(new ManualClock());
    const groups = await targets(running.url);
    const port = new URL(running.url).port;
    expect(groups).toEqual([
      {
        targets: [`127.0.0.1:${port}`],
        labels: expect.objectContaining({
          job: 'consul',
          instance: testNodeName,
          __meta_consul_service: 'consul',
          __meta_consul_health: 'passing',
        }),
      },
    ]);
  });

  it('keeps the services of ?service=, the instances with every ?tag=, and with ?passing those whose checks all pass', async () => {
    const running = await startServer(new ManualClock());
    await populate(running);
    const ids = (groups: TargetGroup[]): (string | undefined)[] => groups.map((g) => g.labels['instance']).sort();

    expect(ids(await targets(running.url))).toEqual(['mail-1', testNodeName, 'users-1', 'users-2']);
    expect(ids(await targets(running.url, '?service=users&service=mail'))).toEqual(['mail-1', 'users-1', 'users-2']);
    expect(ids(await targets(running.url, '?tag=v2&tag=eu'))).toEqual(['users-1']);
    expect(ids(await targets(running.url, '?service=users&passing'))).toEqual(['users-1']);
    expect(ids(await targets(running.url, '?service=nobody'))).toEqual([]);

    const bad = await get(`${running.url}${prometheusTargetsPath}?passing=perhaps`);
    expect(bad.status).toBe(400);
    expect(bad.text).toMatch(/passing/);
  });

  it('follows the catalog: a deregistered instance is gone from the next answer', async () => {
    const running = await startServer(new ManualClock());
    await populate(running);
    await running.consul.agent.service.deregister('users-2');
    expect(byInstance(await targets(running.url), 'users-2')).toBeUndefined();
    expect(byInstance(await targets(running.url), 'users-1')).toBeDefined();
  });

  it('with ACLs on, shows a token the services it may read and refuses an unknown token', async () => {
    const root = 'root-secret';
    const server = new RegistryServer({ logLevel: 'silent', acl: { enabled: true, initialManagementToken: root } });
    try {
      const { url, port } = await server.listen({ port: 0, host: '127.0.0.1' });
      const asRoot = { 'X-Consul-Token': root };
      for (const [name, p] of [
        ['users', 4001],
        ['mail', 4100],
      ] as const) {
        const reply = await fetch(`${url}/v1/agent/service/register`, {
          method: 'PUT',
          headers: asRoot,
          body: JSON.stringify({ Name: name, ID: `${name}-1`, Address: '127.0.0.1', Port: p }),
        });
        expect(reply.status).toBe(200);
      }
      const policy = await fetch(`${url}/v1/acl/policy`, {
        method: 'PUT',
        headers: asRoot,
        body: JSON.stringify({ Name: 'prometheus', Rules: 'service "users" { policy = "read" }' }),
      });
      const { ID } = (await policy.json()) as { ID: string };
      const token = await fetch(`${url}/v1/acl/token`, {
        method: 'PUT',
        headers: asRoot,
        body: JSON.stringify({ Policies: [{ ID }] }),
      });
      const { SecretID } = (await token.json()) as { SecretID: string };

      // Prometheus sends the token as `authorization: { credentials: <secret> }` does: a bearer.
      const seen = await targets(url, '', { Authorization: `Bearer ${SecretID}` });
      expect(seen.map((g) => g.labels['instance'])).toEqual(['users-1']);
      expect((await targets(url, '', asRoot)).map((g) => g.labels['job']).sort()).toEqual(['consul', 'mail', 'users']);
      const unknown = await fetch(`http://127.0.0.1:${port}${prometheusTargetsPath}`, {
        headers: { 'X-Consul-Token': 'no-such-secret' },
      });
      expect(unknown.status).toBe(403);
    } finally {
      await server.close();
    }
  });
});
