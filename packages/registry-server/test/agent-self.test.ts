import { afterEach, describe, expect, it } from '@jest/globals';
import Consul from 'consul';
import { RegistryServer } from '@trellis/registry-server';
import { closeAll, get, startServer, testNodeName } from './helpers.js';

afterEach(closeAll);

interface Self {
  Config: Record<string, unknown>;
  Member: Record<string, unknown>;
  Stats: Record<string, Record<string, unknown>>;
  [key: string]: unknown;
}

describe('agent/self Stats', () => {
  it('says, as strings the way Consul does, that this server is the leader of a one-datacenter cluster', async () => {
    const { url, consul } = await startServer();
    const self = (await consul.agent.self()) as Self;
    const leader = JSON.parse((await get(`${url}/v1/status/leader`)).text) as string;
    expect(self.Stats['consul']).toEqual({
      acl: 'disabled',
      bootstrap: 'true',
      known_datacenters: '1',
      leader: 'true',
      leader_addr: leader,
      server: 'true',
    });
    expect(self.Stats['build']).toMatchObject({ version: self.Config['Version'] });
    for (const section of Object.values(self.Stats)) {
      for (const value of Object.values(section)) expect(typeof value).toBe('string');
    }
  });

  it('counts the agent services and checks', async () => {
    const { consul } = await startServer();
    await consul.agent.service.register({ name: 'users', check: { ttl: '10s' } as never });
    await consul.agent.service.register({ name: 'mail' });
    expect(((await consul.agent.self()) as Self).Stats['agent']).toEqual({
      check_monitors: '0',
      check_ttls: '1',
      checks: '1',
      services: '2',
    });
  });

  it('has no xDS block, since no xDS is served', async () => {
    const { consul } = await startServer();
    expect(await consul.agent.self()).not.toHaveProperty('xDS');
  });

  it('says ACLs are enabled when they are', async () => {
    const server = new RegistryServer({ logLevel: 'silent', acl: { enabled: true, initialManagementToken: 'root' } });
    try {
      const { port } = await server.listen({ port: 0 });
      const self = (await new Consul({ host: '127.0.0.1', port, defaults: { token: 'root' } }).agent.self()) as Self;
      expect(self.Stats['consul']).toMatchObject({ acl: 'enabled' });
    } finally {
      await server.close();
    }
  });
});

describe('agent/members', () => {
  it('lists the local member, the same object as agent/self.Member', async () => {
    const { consul } = await startServer();
    const self = (await consul.agent.self()) as Self;
    expect(await consul.agent.members()).toEqual([self.Member]);
    expect(self.Member).toMatchObject({ Name: testNodeName, Port: 8301, Status: 1 });
  });

  it('names the member <node>.<datacenter> in the WAN pool, as a Consul server', async () => {
    const { consul } = await startServer();
    expect(await consul.agent.members({ wan: true })).toEqual([
      expect.objectContaining({ Name: `${testNodeName}.dc1`, Port: 8302 }),
    ]);
  });
});
