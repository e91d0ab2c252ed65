import { hostname } from 'node:os';
import { afterEach, describe, expect, it } from '@jest/globals';
import Consul from 'consul';
import { ConfigError } from '@trellis/core';
import { RegistryServer } from '@trellis/registry-server';
import { exited, killCliChildren, listeningUrl, spawnCli, stderrOf } from './cli-process.js';

const servers: RegistryServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
  await killCliChildren();
});

async function start(options: ConstructorParameters<typeof RegistryServer>[0]): Promise<Consul> {
  const server = new RegistryServer({ logLevel: 'silent', ...options });
  servers.push(server);
  const { port } = await server.listen({ port: 0 });
  return new Consul({ host: '127.0.0.1', port });
}

interface NodeCheck {
  Node: string;
  CheckID: string;
  Status: string;
}

// What the test harnesses of Consul clients do after starting `consul agent -node <name>`:
// ask health/node/<name> until the node's serfHealth check passes (bounded, never a sleep:
// every round is a request).
async function waitForNode(consul: Consul, name: string): Promise<NodeCheck[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const checks = (await consul.health.node(name)) as unknown as NodeCheck[];
    if (checks.some((c) => c.CheckID === 'serfHealth' && c.Status === 'passing')) return checks;
  }
  throw new Error(`node ${name} never became healthy`);
}

describe('naming the node', () => {
  it('answers as the node, datacenter and address it was given, wherever Consul names them', async () => {
    const consul = await start({ nodeName: 'registry-7', datacenter: 'eu-west', nodeAddress: '10.1.2.3' });
    const checks = await waitForNode(consul, 'registry-7');
    expect(checks).toEqual([expect.objectContaining({ Node: 'registry-7', CheckID: 'serfHealth' })]);
    // Another name is another node, which this agent does not have.
    expect(await consul.health.node('trellis')).toEqual([]);

    const self = (await consul.agent.self()) as { Config: Record<string, unknown>; Member: Record<string, unknown> };
    expect(self.Config).toMatchObject({ NodeName: 'registry-7', Datacenter: 'eu-west', PrimaryDatacenter: 'eu-west' });
    expect(self.Member).toMatchObject({ Name: 'registry-7', Addr: '10.1.2.3', Tags: { dc: 'eu-west' } });
    expect(await consul.catalog.datacenters({})).toEqual(['eu-west']);
    expect(await consul.catalog.nodes({})).toEqual([
      expect.objectContaining({ Node: 'registry-7', Address: '10.1.2.3', Datacenter: 'eu-west' }),
    ]);

    // A service registered with no Address is reached at the node's.
    await consul.agent.service.register({ name: 'users', port: 4000 });
    const [entry] = (await consul.health.service('users')) as { Node: Record<string, unknown> }[];
    expect(entry?.Node).toMatchObject({ Node: 'registry-7', Address: '10.1.2.3', Datacenter: 'eu-west' });
  });

  it('is named after the host by default, as a Consul agent is, in datacenter dc1 at 127.0.0.1', async () => {
    const consul = await start({});
    const self = (await consul.agent.self()) as { Config: Record<string, unknown>; Member: Record<string, unknown> };
    expect(self.Config).toMatchObject({ NodeName: hostname().trim(), Datacenter: 'dc1' });
    expect(self.Member).toMatchObject({ Name: hostname().trim(), Addr: '127.0.0.1' });
    await waitForNode(consul, hostname().trim());
  });

  it('lower-cases the datacenter and refuses names Consul refuses, naming the option', () => {
    expect(() => new RegistryServer({ datacenter: 'dc 1' })).toThrow('cannot be "dc 1". Please use only [a-z0-9-_].');
    for (const [options, field] of [
      [{ nodeName: '' }, 'nodeName'],
      [{ nodeName: 'a/b' }, 'nodeName'],
      [{ nodeName: 'x'.repeat(257) }, 'nodeName'],
      [{ datacenter: 'eu.west' }, 'datacenter'],
      [{ nodeAddress: 'registry.local' }, 'nodeAddress'],
      [{ nodeAddress: '0.0.0.0' }, 'nodeAddress'],
      [{ nodeAddress: '::' }, 'nodeAddress'],
    ] as const) {
      let thrown: unknown;
      try {
        new RegistryServer(options);
      } catch (error) {
        thrown = error;
      }
      expect(ConfigError.is(thrown) && thrown.field).toBe(field);
    }
  });

  it('takes a node name as long as any other name, and answers for it by name', async () => {
    const name = 'n'.repeat(256);
    const consul = await start({ nodeName: name });
    await waitForNode(consul, name);
  });

  it('answers in the lower-cased datacenter', async () => {
    const consul = await start({ datacenter: 'EU-West' });
    expect(await consul.catalog.datacenters({})).toEqual(['eu-west']);
  });
});

describe('the CLI naming the node', () => {
  it('takes --node-name, --datacenter and --advertise', async () => {
    const child = spawnCli(
      ['--port', '0', '--dev', '--log-level', 'silent', '--node-name', 'cli-node'].concat([
        '--datacenter',
        'lab',
        '--advertise',
        '10.9.8.7',
      ]),
    );
    const port = Number(new URL(await listeningUrl(child)).port);
    const consul = new Consul({ host: '127.0.0.1', port });
    await waitForNode(consul, 'cli-node');
    const self = (await consul.agent.self()) as { Config: Record<string, unknown>; Member: Record<string, unknown> };
    expect(self.Config).toMatchObject({ NodeName: 'cli-node', Datacenter: 'lab' });
    expect(self.Member).toMatchObject({ Addr: '10.9.8.7' });
  });

  it('advertises the address it binds when that is one address', async () => {
    const child = spawnCli(['--port', '0', '--dev', '--log-level', 'silent', '--host', '127.0.0.1']);
    const port = Number(new URL(await listeningUrl(child)).port);
    const [node] = (await new Consul({ host: '127.0.0.1', port }).catalog.nodes({})) as { Address: string }[];
    expect(node?.Address).toBe('127.0.0.1');
  });

  it('exits 2 with one line naming the flag for a bad value', async () => {
    for (const args of [
      ['--node-name', 'a b'],
      ['--datacenter', 'dc.1'],
      ['--advertise', 'localhost'],
      ['--advertise', '0.0.0.0'],
    ]) {
      const child = spawnCli(['--dev', ...args]);
      const stderr = stderrOf(child);
      expect(await exited(child)).toBe(2);
      const text = (await stderr).trim();
      expect(text.split('\n')).toHaveLength(1);
      expect(text).toContain(args[0]);
    }
  });
});
