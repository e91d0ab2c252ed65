import { ManualClock } from '@trellis/core';
import { ConsulRegistry, EtcdRegistry } from '@trellis/registry';
import { RegistryServer } from '@trellis/registry-server';
import { freePort, startEtcdCluster, type EtcdCluster } from './etcd-server.js';
import { registryBehaviour } from './registry-behaviour.js';

describe('ConsulRegistry, against the registry server', () => {
  registryBehaviour(async () => {
    const clock = new ManualClock();
    const server = new RegistryServer({ clock, logLevel: 'silent' });
    const { url } = await server.listen({ port: 0 });
    const registry = new ConsulRegistry({ url });
    const unreachablePort = await freePort();
    return {
      registry,
      expiringTtlMs: 3_000,
      letTtlPass: async () => clock.advance(3_000),
      unreachable: () => ({
        registry: new ConsulRegistry({ url: `http://127.0.0.1:${unreachablePort}`, timeoutMs: 1_000 }),
        address: `http://127.0.0.1:${unreachablePort}`,
      }),
      close: async () => {
        await registry.close();
        await server.close();
      },
    };
  });
});

describe('EtcdRegistry, against a real etcd', () => {
  let etcd: EtcdCluster;
  let tests = 0;
  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  registryBehaviour(async () => {
    // A prefix per test: what one test registered never shows in the next.
    const prefix = `test-${++tests}/`;
    const endpoints = [etcd.members[0]?.clientUrl ?? ''];
    const registry = new EtcdRegistry({ endpoints, prefix });
    const unreachablePort = await freePort();
    return {
      registry,
      // etcd's leases count whole seconds of real time.
      expiringTtlMs: 1_000,
      letTtlPass: async (service) => {
        const reader = new EtcdRegistry({ endpoints, prefix });
        try {
          let view = await reader.query(service);
          for (let i = 0; i < 10 && view.healthy.length > 0; i++) {
            view = await reader.query(service, { index: view.index, waitMs: 1_000 });
          }
        } finally {
          await reader.close();
        }
      },
      unreachable: () => ({
        registry: new EtcdRegistry({ endpoints: [`127.0.0.1:${unreachablePort}`], timeoutMs: 1_000 }),
        address: `http://127.0.0.1:${unreachablePort}`,
      }),
      close: () => registry.close(),
    };
  });
});
