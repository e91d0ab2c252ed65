import { afterEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '@trellis/core';
import { closeAll, get, startServer, type Running } from './helpers.js';

afterEach(closeAll);

/** Waits until the server holds `count` blocking queries. */
async function held(running: Running, count: number): Promise<void> {
  for (let i = 0; i < 10_000 && running.server.heldQueries < count; i++) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  expect(running.server.heldQueries).toBe(count);
}

describe('catalog/service/:name', () => {
  it("lists each instance in Consul's flat shape, whatever its health", async () => {
    const { consul } = await startServer(new ManualClock());
    await consul.agent.service.register({
      name: 'users',
      id: 'users-1',
      address: '10.0.0.7',
      port: 4000,
      tags: ['http'],
      meta: { version: '2' },
      check: { ttl: '10s' } as never, // critical: the catalog lists it all the same
    });
    const nodes = (await consul.catalog.service.nodes('users')) as Record<string, unknown>[];
    expect(nodes).toHaveLength(1);
    expect(nodes[0]).toEqual({
      ID: expect.stringMatching(/^[0-9a-f-]{36}$/),
      Node: 'trellis',
      Address: '127.0.0.1',
      Datacenter: 'dc1',
      TaggedAddresses: { lan: '127.0.0.1', lan_ipv4: '127.0.0.1', wan: '127.0.0.1', wan_ipv4: '127.0.0.1' },
      NodeMeta: { 'consul-network-segment': '' },
      ServiceKind: '',
      ServiceID: 'users-1',
      ServiceName: 'users',
      ServiceAddress: '10.0.0.7',
      ServiceTags: ['http'],
      ServiceMeta: { version: '2' },
      ServicePort: 4000,
      ServiceWeights: { Passing: 1, Warning: 1 },
      ServiceEnableTagOverride: false,
      ServiceProxy: { Mode: '', MeshGateway: {}, Expose: {} },
      ServiceConnect: {},
      CreateIndex: expect.any(Number),
      ModifyIndex: expect.any(Number),
    });
  });

  it('filters by ?tag, every tag given, and answers [] for an unknown service', async () => {
    const { url, consul } = await startServer();
    await consul.agent.service.register({ name: 'users', id: 'u1', tags: ['a'] });
    await consul.agent.service.register({ name: 'users', id: 'u2', tags: ['a', 'b'] });
    const ids = async (query: string): Promise<string[]> =>
      (JSON.parse((await get(`${url}/v1/catalog/service/users${query}`)).text) as { ServiceID: string }[]).map(
        (n) => n.ServiceID,
      );
    expect(await ids('')).toEqual(['u1', 'u2']);
    expect(await ids('?tag=a')).toEqual(['u1', 'u2']);
    expect(await ids('?tag=a&tag=b')).toEqual(['u2']);
    expect(await ids('?tag=c')).toEqual([]);
    expect(await consul.catalog.service.nodes({ service: 'users', tag: 'b' } as never)).toHaveLength(1);
    const unknown = await get(`${url}/v1/catalog/service/nope`);
    // A read of one service answers with that service's own index: 1 for one never registered.
    expect([unknown.status, unknown.text, unknown.headers.get('x-consul-index')]).toEqual([200, '[]', '1']);
  });

  it('holds a blocking read until that service changes', async () => {
    const running = await startServer(new ManualClock());
    await running.consul.agent.service.register({ name: 'users', id: 'u1' });
    const first = await get(`${running.url}/v1/catalog/service/users`);
    const pending = get(`${running.url}/v1/catalog/service/users?index=${first.headers.get('x-consul-index')}`);
    await held(running, 1);
    await running.consul.agent.service.register({ name: 'mail' });
    expect(running.server.heldQueries).toBe(1);
    await running.consul.agent.service.deregister('u1');
    const after = await pending;
    expect(after.text).toBe('[]');
    expect(Number(after.headers.get('x-consul-index'))).toBeGreaterThan(Number(first.headers.get('x-consul-index')));
  });
});

describe('catalog nodes', () => {
  it('lists the one node', async () => {
    const { consul } = await startServer();
    expect(await consul.catalog.node.list()).toEqual([
      {
        ID: expect.any(String),
        Node: 'trellis',
        Address: '127.0.0.1',
        Datacenter: 'dc1',
        TaggedAddresses: { lan: '127.0.0.1', lan_ipv4: '127.0.0.1', wan: '127.0.0.1', wan_ipv4: '127.0.0.1' },
        Meta: { 'consul-network-segment': '' },
        CreateIndex: 1,
        ModifyIndex: 1,
      },
    ]);
  });

  it('describes the node with its services by id, by name or by node ID', async () => {
    const { url, consul } = await startServer();
    expect(await consul.catalog.node.services('trellis')).toMatchObject({ Node: { Node: 'trellis' }, Services: {} });
    await consul.agent.service.register({ name: 'users', id: 'u1', port: 4000, tags: ['a'] });
    const byName = (await consul.catalog.node.services('trellis')) as {
      Node: { ID: string };
      Services: Record<string, Record<string, unknown>>;
    };
    // The server's own `consul` service is on its node, as on a Consul server's.
    expect(Object.keys(byName.Services)).toEqual(['consul', 'u1']);
    expect(byName.Services['u1']).toMatchObject({ ID: 'u1', Service: 'users', Port: 4000, Tags: ['a'] });
    const byId = JSON.parse((await get(`${url}/v1/catalog/node/${byName.Node.ID}`)).text) as typeof byName;
    expect(Object.keys(byId.Services)).toEqual(['consul', 'u1']);
  });

  it('answers 200 with null for an unknown node, as Consul does', async () => {
    const { url } = await startServer();
    const reply = await get(`${url}/v1/catalog/node/elsewhere`);
    expect([reply.status, reply.text]).toEqual([200, 'null']);
  });

  it('holds a blocking read of the node until any service changes', async () => {
    const running = await startServer(new ManualClock());
    const first = await get(`${running.url}/v1/catalog/node/trellis`);
    const pendingNode = get(`${running.url}/v1/catalog/node/trellis?index=${first.headers.get('x-consul-index')}`);
    const pendingNodes = get(`${running.url}/v1/catalog/nodes?index=${first.headers.get('x-consul-index')}`);
    await held(running, 2);
    await running.consul.agent.service.register({ name: 'mail' });
    const after = JSON.parse((await pendingNode).text) as { Services: Record<string, unknown> };
    expect(Object.keys(after.Services)).toEqual(['consul', 'mail']);
    expect(Number((await pendingNodes).headers.get('x-consul-index'))).toBeGreaterThan(1);
  });

  it('lists the datacenter', async () => {
    const { consul } = await startServer();
    expect(await consul.catalog.datacenters()).toEqual(['dc1']);
  });
});

describe('status', () => {
  it('names this server as leader and only peer, at the Consul server port', async () => {
    const { url, consul } = await startServer();
    expect(await consul.status.leader()).toBe('127.0.0.1:8300');
    expect(await consul.status.peers()).toEqual(['127.0.0.1:8300']);
    const reply = await get(`${url}/v1/status/leader`);
    expect([reply.text, reply.headers.get('content-type')]).toEqual([
      '"127.0.0.1:8300"',
      expect.stringMatching(/^application\/json/),
    ]);
    const post = await fetch(`${url}/v1/status/peers`, { method: 'POST' });
    expect(post.status).toBe(405);
  });
});
