import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '@trellis/core';
import { RegistryServer } from '@trellis/registry-server';
import { closeAll, get, health, put, startServer, type Running, tokenWithRules } from './helpers.js';

afterEach(closeAll);

// What Consul ESM registers for a node it watches: the node, tagged as external, a service on
// it, a check of the node and a check of the service.
const esmNode = {
  Node: 'ext-db',
  Address: '10.1.0.5',
  NodeMeta: { 'external-node': 'true', 'external-probe': 'true' },
  Service: { ID: 'db-1', Service: 'db', Port: 5432, Tags: ['primary'], Meta: { role: 'leader' } },
  Checks: [
    { CheckID: 'externalNodeHealth', Name: 'External Node Status', Status: 'passing', Output: 'ping ok' },
    {
      CheckID: 'db-health',
      Name: 'db TCP',
      ServiceID: 'db-1',
      Status: 'passing',
      Definition: { TCP: '10.1.0.5:5432', IntervalDuration: '10s', TimeoutDuration: '2s' },
    },
  ],
};

async function register(url: string, body: unknown): Promise<void> {
  const reply = await put(`${url}/v1/catalog/register`, JSON.stringify(body));
  expect([reply.status, reply.text]).toEqual([200, 'true']);
}

async function json<T>(url: string): Promise<T> {
  const reply = await get(url);
  if (reply.status !== 200) throw new Error(`${url} answered ${reply.status}: ${reply.text}`);
  return JSON.parse(reply.text) as T;
}

/** Waits until the server holds `count` blocking queries. */
async function held(running: Running, count: number): Promise<void> {
  for (let i = 0; i < 10_000 && running.server.heldQueries < count; i++) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  expect(running.server.heldQueries).toBe(count);
}

describe('catalog/register of another node', () => {
  it('puts the node, its service and checks in every catalog and health read, not in the agent', async () => {
    const { url, consul } = await startServer(new ManualClock());
    await consul.catalog.register({
      node: esmNode.Node,
      address: esmNode.Address,
      nodemeta: esmNode.NodeMeta,
      service: { id: 'db-1', service: 'db', port: 5432, tags: ['primary'], meta: { role: 'leader' } },
    });
    await register(url, esmNode);

    const nodes = await json<{ Node: string; Address: string; Meta: Record<string, string> }[]>(
      `${url}/v1/catalog/nodes`,
    );
    expect(nodes.map((n) => [n.Node, n.Address])).toEqual([
      ['ext-db', '10.1.0.5'],
      ['trellis', '127.0.0.1'],
    ]);
    expect(nodes[0]?.Meta).toEqual(esmNode.NodeMeta);
    // ESM finds its nodes by their metadata.
    const external = await json<{ Node: string }[]>(`${url}/v1/catalog/nodes?node-meta=external-node:true`);
    expect(external.map((n) => n.Node)).toEqual(['ext-db']);

    const node = await json<{ Node: { Node: string }; Services: Record<string, { Service: string; Port: number }> }>(
      `${url}/v1/catalog/node/EXT-DB`,
    );
    expect(node.Node.Node).toBe('ext-db');
    expect(Object.keys(node.Services)).toEqual(['db-1']);

    const checks = await json<{ CheckID: string; Node: string; ServiceID: string; Definition: object }[]>(
      `${url}/v1/health/node/ext-db`,
    );
    expect(checks.map((c) => [c.CheckID, c.Node, c.ServiceID])).toEqual([
      ['db-health', 'ext-db', 'db-1'],
      ['externalNodeHealth', 'ext-db', ''],
    ]);
    expect(checks[0]?.Definition).toEqual({ TCP: '10.1.0.5:5432', Interval: '10s', Timeout: '2s' });

    const instances = (await consul.catalog.service.nodes('db')) as { Node: string; Address: string }[];
    expect(instances.map((i) => [i.Node, i.Address])).toEqual([['ext-db', '10.1.0.5']]);
    const { entries } = await health(url, 'db', '?passing');
    expect(entries.map((e) => [e.Node.Node, e.Service.ID, e.Checks.map((c) => c.CheckID)])).toEqual([
      ['ext-db', 'db-1', ['externalNodeHealth', 'db-health']],
    ]);
    expect(await json<Record<string, string[]>>(`${url}/v1/catalog/services`)).toEqual({
      consul: [],
      db: ['primary'],
    });
    expect(await consul.agent.service.list()).toEqual({});
    expect(await consul.agent.check.list()).toEqual({});
  });

  it('counts a critical check of the node or of the service against ?passing, and wakes a watcher', async () => {
    const running = await startServer(new ManualClock());
    const { url } = running;
    await register(url, esmNode);
    const before = await health(url, 'db', '?passing');
    expect(before.entries).toHaveLength(1);
    const pending = health(url, 'db', `?passing&index=${before.index}`);
    await held(running, 1);
    await register(url, {
      Node: 'ext-db',
      Address: '10.1.0.5',
      NodeMeta: esmNode.NodeMeta,
      Check: { CheckID: 'externalNodeHealth', Name: 'External Node Status', Status: 'critical' },
    });
    const after = await pending;
    expect(after.index).toBeGreaterThan(before.index);
    expect(after.entries).toEqual([]);
    const states = await json<{ CheckID: string; Node: string }[]>(`${url}/v1/health/state/critical`);
    expect(states.map((c) => [c.Node, c.CheckID])).toEqual([['ext-db', 'externalNodeHealth']]);
  });

  it('re-posting the same registration changes no index', async () => {
    const { url } = await startServer(new ManualClock());
    await register(url, esmNode);
    const index = (await get(`${url}/v1/catalog/nodes`)).headers.get('x-consul-index');
    await register(url, esmNode);
    expect((await get(`${url}/v1/catalog/nodes`)).headers.get('x-consul-index')).toBe(index);
  });

  it('with SkipNodeUpdate keeps the address and metadata, and updates the check', async () => {
    const { url } = await startServer(new ManualClock());
    await register(url, esmNode);
    await register(url, {
      Node: 'ext-db',
      SkipNodeUpdate: true,
      Check: { CheckID: 'externalNodeHealth', Name: 'External Node Status', Status: 'warning' },
    });
    const [node] = await json<{ Address: string; Meta: object }[]>(
      `${url}/v1/catalog/nodes?node-meta=external-node:true`,
    );
    expect(node?.Address).toBe('10.1.0.5');
    const checks = await json<{ CheckID: string; Status: string }[]>(`${url}/v1/health/node/ext-db`);
    expect(checks.find((c) => c.CheckID === 'externalNodeHealth')?.Status).toBe('warning');
  });

  it('deregisters a check, a service with its checks, or the whole node', async () => {
    const { url, consul } = await startServer(new ManualClock());
    await register(url, esmNode);
    await register(url, { Node: 'ext-db', Address: '10.1.0.5', Service: { Service: 'cache', Port: 6379 } });

    await consul.catalog.deregister({ node: 'ext-db', checkid: 'externalNodeHealth' });
    let checks = await json<{ CheckID: string }[]>(`${url}/v1/health/node/ext-db`);
    expect(checks.map((c) => c.CheckID)).toEqual(['db-health']);

    await consul.catalog.deregister({ node: 'ext-db', serviceid: 'db-1' });
    expect(await consul.catalog.service.nodes('db')).toEqual([]);
    checks = await json<{ CheckID: string }[]>(`${url}/v1/health/node/ext-db`);
    expect(checks).toEqual([]);
    expect((await consul.catalog.service.nodes('cache')) as unknown[]).toHaveLength(1);

    // Nothing to remove is no error, as in Consul.
    const missing = await put(`${url}/v1/catalog/deregister`, JSON.stringify({ Node: 'ext-db', ServiceID: 'nope' }));
    expect([missing.status, missing.text]).toEqual([200, 'true']);

    await consul.catalog.deregister('ext-db');
    expect((await consul.catalog.node.list()) as unknown[]).toHaveLength(1);
    expect((await get(`${url}/v1/catalog/node/ext-db`)).text).toBe('null');
    expect(await consul.catalog.service.nodes('cache')).toEqual([]);
  });

  it('refuses what Consul refuses, with 400 naming it', async () => {
    const { url } = await startServer();
    const refused = async (body: unknown): Promise<string> => {
      const reply = await put(`${url}/v1/catalog/register`, JSON.stringify(body));
      expect(reply.status).toBe(400);
      return reply.text;
    };
    expect(await refused({ Address: '10.0.0.1' })).toBe('Must provide node');
    expect(await refused({ Node: 'n1' })).toBe('Must provide address if SkipNodeUpdate is not set');
    expect(await refused({ Node: 'n1', Address: 'a', ID: 'not-a-uuid' })).toContain('Bad node ID');
    expect(await refused({ Node: 'n1', Address: 'a', Service: { ID: 'x' } })).toBe('Must provide service name with ID');
    expect(
      await refused({ Node: 'n1', Address: 'a', Check: { CheckID: 'c', ServiceID: 'ghost', Status: 'passing' } }),
    ).toContain("Unknown service ID 'ghost'");
    expect(await refused({ Node: 'n1', Address: 'a', Check: { CheckID: 'c', Status: 'sideways' } })).toContain(
      'Check.Status',
    );
    // This server's own node is the agent's: its services are registered there.
    expect(await refused({ Node: 'trellis', Address: '127.0.0.1', Service: { Service: 'x' } })).toContain(
      '/v1/agent/service/register',
    );
    // A refused registration changed nothing.
    expect(await json<unknown[]>(`${url}/v1/catalog/nodes`)).toHaveLength(1);
  });

  it('keeps other nodes across a restart', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-catalog-register-'));
    try {
      const start = async (): Promise<{ server: RegistryServer; url: string }> => {
        const server = new RegistryServer({ logLevel: 'silent', clock: new ManualClock(), dataDir: dir });
        const { url } = await server.listen({ port: 0, host: '127.0.0.1' });
        return { server, url };
      };
      const first = await start();
      await register(first.url, esmNode);
      const before = await get(`${first.url}/v1/health/service/db`);
      await first.server.close();
      const second = await start();
      try {
        const after = await get(`${second.url}/v1/health/service/db`);
        expect(after.text).toBe(before.text);
        expect(after.headers.get('x-consul-index')).toBe(before.headers.get('x-consul-index'));
        await put(`${second.url}/v1/catalog/deregister`, JSON.stringify({ Node: 'ext-db' }));
        expect(Number((await get(`${second.url}/v1/catalog/nodes`)).headers.get('x-consul-index'))).toBeGreaterThan(
          Number(before.headers.get('x-consul-index')),
        );
      } finally {
        await second.server.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the server's own consul service", () => {
  it('is in catalog/services, catalog/service/consul and health/service/consul, not in agent/services', async () => {
    const { url, consul } = await startServer();
    expect(await consul.catalog.service.list()).toEqual({ consul: [] });
    const [entry] = (await consul.catalog.service.nodes('consul')) as Record<string, unknown>[];
    expect(entry).toMatchObject({ Node: 'trellis', ServiceID: 'consul', ServiceName: 'consul', ServicePort: 8300 });
    const { entries } = await health(url, 'consul', '?passing');
    expect(entries.map((e) => [e.Node.Node, e.Service.ID, e.Checks.map((c) => c.CheckID)])).toEqual([
      ['trellis', 'consul', ['serfHealth']],
    ]);
    expect(await consul.agent.service.list()).toEqual({});
  });
});

describe('EnableTagOverride', () => {
  it('is stored and returned by the agent, catalog and health reads', async () => {
    const { url, consul } = await startServer();
    await put(`${url}/v1/agent/service/register`, JSON.stringify({ Name: 'web', EnableTagOverride: true }));
    const agent = (await consul.agent.service.list()) as Record<string, { EnableTagOverride: boolean }>;
    expect(agent['web']?.EnableTagOverride).toBe(true);
    const [catalogEntry] = (await consul.catalog.service.nodes('web')) as { ServiceEnableTagOverride: boolean }[];
    expect(catalogEntry?.ServiceEnableTagOverride).toBe(true);
    const [entry] = await json<{ Service: { EnableTagOverride: boolean } }[]>(`${url}/v1/health/service/web`);
    expect(entry?.Service.EnableTagOverride).toBe(true);
    // Changing only the flag is a change.
    const index = (await get(`${url}/v1/catalog/services`)).headers.get('x-consul-index');
    await put(`${url}/v1/agent/service/register`, JSON.stringify({ Name: 'web', EnableTagOverride: false }));
    expect((await get(`${url}/v1/catalog/services`)).headers.get('x-consul-index')).not.toBe(index);
    const refused = await put(
      `${url}/v1/agent/service/register`,
      JSON.stringify({ Name: 'web', EnableTagOverride: 'yes' }),
    );
    expect([refused.status, refused.text]).toEqual([
      400,
      'Request decode failed: EnableTagOverride must be true or false',
    ]);
  });
});

describe('?dc= naming another datacenter', () => {
  it("answers 500 'No path to datacenter' as Consul does, on every route that takes dc", async () => {
    const { url } = await startServer();
    await put(`${url}/v1/kv/a`, 'x');
    for (const route of [
      '/v1/catalog/services',
      '/v1/catalog/nodes',
      '/v1/catalog/service/web',
      '/v1/catalog/node/trellis',
      '/v1/health/service/web',
      '/v1/health/checks/web',
      '/v1/health/node/trellis',
      '/v1/health/state/any',
      '/v1/kv/a',
      '/v1/status/leader',
    ]) {
      const reply = await get(`${url}${route}?dc=dc2`);
      expect([route, reply.status, reply.text]).toEqual([route, 500, 'No path to datacenter']);
      expect((await get(`${url}${route}?dc=dc1`)).status).toBe(200);
    }
    const write = await put(`${url}/v1/kv/b?dc=dc2`, 'y');
    expect([write.status, write.text]).toEqual([500, 'No path to datacenter']);
    expect((await get(`${url}/v1/kv/b`)).status).toBe(404);
    const body = await put(`${url}/v1/catalog/register`, JSON.stringify({ ...esmNode, Datacenter: 'dc2' }));
    expect([body.status, body.text]).toEqual([500, 'No path to datacenter']);
    // The agent's own routes and the datacenter list take no dc.
    expect((await get(`${url}/v1/agent/services?dc=dc2`)).status).toBe(200);
    expect((await get(`${url}/v1/catalog/datacenters?dc=dc2`)).status).toBe(200);
  });
});

describe('catalog/register with ACLs', () => {
  const root = 'root-secret';
  const servers: RegistryServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  const withToken = (url: string, rules: string): Promise<string> => tokenWithRules(url, root, rules);

  const call = async (url: string, route: string, token: string, body: unknown): Promise<number> =>
    (await fetch(`${url}${route}`, { method: 'PUT', headers: { 'X-Consul-Token': token }, body: JSON.stringify(body) }))
      .status;

  it('needs node write on the node and service write on the service, as Consul asks', async () => {
    const server = new RegistryServer({ logLevel: 'silent', acl: { enabled: true, initialManagementToken: root } });
    servers.push(server);
    const { url } = await server.listen({ port: 0, host: '127.0.0.1' });
    const serviceOnly = await withToken(url, 'service "db" { policy = "write" }');
    const nodeOnly = await withToken(url, 'node "ext-db" { policy = "write" }');
    const both = await withToken(url, 'node "ext-db" { policy = "write" }\nservice "db" { policy = "write" }');
    const body = { Node: 'ext-db', Address: '10.1.0.5', Service: { ID: 'db-1', Service: 'db' } };

    expect(await call(url, '/v1/catalog/register', serviceOnly, body)).toBe(403);
    expect(await call(url, '/v1/catalog/register', nodeOnly, body)).toBe(403);
    expect(await call(url, '/v1/catalog/register', both, body)).toBe(200);
    // Re-posting the node unchanged with a service needs no node write (vetRegisterWithACL).
    expect(await call(url, '/v1/catalog/register', serviceOnly, body)).toBe(200);
    // A check of the node needs node write.
    const nodeCheck = { ...body, Check: { CheckID: 'n', Status: 'passing' } };
    expect(await call(url, '/v1/catalog/register', serviceOnly, nodeCheck)).toBe(403);
    expect(await call(url, '/v1/catalog/register', both, nodeCheck)).toBe(200);

    // Deregistering the service: service write or node write; the node: node write.
    expect(await call(url, '/v1/catalog/deregister', serviceOnly, { Node: 'ext-db' })).toBe(403);
    expect(await call(url, '/v1/catalog/deregister', serviceOnly, { Node: 'ext-db', ServiceID: 'db-1' })).toBe(200);
    expect(await call(url, '/v1/catalog/deregister', nodeOnly, { Node: 'ext-db' })).toBe(200);
    expect(
      (await fetch(`${url}/v1/catalog/nodes`, { headers: { 'X-Consul-Token': root } }).then((r) =>
        r.json(),
      )) as unknown[],
    ).toHaveLength(1);
  });
});
