import { ConfigError, RegistryUnavailableError } from '@trellis/core';
import { ConsulRegistry, EtcdRegistry, parseRegistryUrl, registryFromUrl } from '@trellis/registry';
import { Etcd3 } from 'etcd3';
import { startEtcdCluster, type EtcdCluster } from './etcd-server.js';
import { instance } from './fixtures.js';

// What is EtcdRegistry's own (the behaviours it shares with ConsulRegistry are in
// every-registry-behaves-alike.test.ts): its keys and leases in etcd, and what it does when a
// member stops answering.
describe('EtcdRegistry on a real etcd', () => {
  let etcd: EtcdCluster;
  let endpoint: string;
  let tests = 0;
  let prefix: string;
  let registry: EtcdRegistry;
  let direct: Etcd3;

  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
    endpoint = etcd.members[0]?.clientUrl ?? '';
  });
  afterAll(async () => {
    await etcd?.stop();
  });
  beforeEach(() => {
    prefix = `own-${++tests}/`;
    registry = new EtcdRegistry({ endpoints: [endpoint], prefix, timeoutMs: 500 });
    direct = new Etcd3({ hosts: endpoint });
  });
  afterEach(async () => {
    etcd.resume('m1');
    await registry.close();
    direct.close();
  });

  it('keeps an instance as its JSON under <prefix>services/<service>/<id>, on a lease of its TTL in whole seconds', async () => {
    const users = instance('users-1', 'users', 4001);
    await registry.register({ instance: users, ttlMs: 1_500, deregisterAfterMs: 60_000 });
    const [kv] = (await direct.get(`${prefix}services/users/users-1`).exec()).kvs;
    expect(JSON.parse(kv?.value.toString() ?? 'null')).toEqual(users);
    const lease = await direct.leaseClient.leaseTimeToLive({ ID: kv?.lease ?? '0' });
    expect(Number(lease.grantedTTL)).toBe(2);
    await registry.deregister('users-1');
    expect((await direct.getAll().prefix(prefix).keys()).length).toBe(0);
  });

  it('registers an id given twice at once as the later one, on the one lease it keeps alive', async () => {
    const leasesBefore = (await direct.leaseClient.leaseLeases()).leases.length;
    await Promise.all([
      registry.register({ instance: instance('users-1', 'users', 4001), ttlMs: 60_000, deregisterAfterMs: 60_000 }),
      registry.register({ instance: instance('users-1', 'users', 4002), ttlMs: 60_000, deregisterAfterMs: 60_000 }),
    ]);
    const [kv] = (await direct.get(`${prefix}services/users/users-1`).exec()).kvs;
    expect(JSON.parse(kv?.value.toString() ?? 'null')).toMatchObject({ port: 4002 });
    const leases = (await direct.leaseClient.leaseLeases()).leases;
    expect(leases).toHaveLength(leasesBefore + 1);
    // The heartbeat keeps the key's lease: revoking what it holds (deregister) removes the key.
    await registry.heartbeat('users-1');
    await registry.deregister('users-1');
    expect(await direct.getAll().prefix(prefix).keys()).toEqual([]);
  });

  it('fails a heartbeat to a member that stopped answering within its timeout, and keeps the lease once it answers again', async () => {
    await registry.register({ instance: instance('users-1'), ttlMs: 60_000, deregisterAfterMs: 60_000 });
    await etcd.pause('m1');
    const started = performance.now();
    const error: unknown = await registry.heartbeat('users-1').catch((e: unknown) => e);
    // Three tries of 500 ms each, and a loaded machine's slack.
    expect(performance.now() - started).toBeLessThan(3 * 500 + 2_000);
    expect(RegistryUnavailableError.is(error)).toBe(true);
    etcd.resume('m1');
    await registry.heartbeat('users-1');
    expect((await registry.list('users')).map((i) => i.id)).toEqual(['users-1']);
  });

  it('leaves no watch behind when a held read gives up on a member that answers too late', async () => {
    const { index } = await registry.query('users');
    await etcd.pause('m1');
    const error: unknown = await registry.query('users', { index, waitMs: 30_000 }).catch((e: unknown) => e);
    expect(RegistryUnavailableError.is(error)).toBe(true);
    etcd.resume('m1');
    // etcd3 makes one watch at a time, in order: once this one is made (and ended), the one the
    // first read gave up on has been made too.
    await registry.query('users', { index, waitMs: 100 });
    const deadline = performance.now() + 5_000;
    let watchers = await etcd.watchers('m1');
    while (watchers > 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      watchers = await etcd.watchers('m1');
    }
    expect(watchers).toBe(0);
  });

  it('answers a held read from a revision etcd has compacted at once, with the current instances', async () => {
    const { index } = await registry.query('users');
    await registry.register({ instance: instance('users-1'), ttlMs: 60_000, deregisterAfterMs: 60_000 });
    const latest = await registry.query('users');
    await direct.kv.compact({ revision: String(latest.index) });
    const started = performance.now();
    const view = await registry.query('users', { index, waitMs: 30_000 });
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(view.healthy.map((i) => i.id)).toEqual(['users-1']);
  });

  it('answers a held read from a revision etcd has not reached (etcd restarted empty) at once, with a lower index', async () => {
    await registry.register({ instance: instance('users-1'), ttlMs: 60_000, deregisterAfterMs: 60_000 });
    const { index } = await registry.query('users');
    const started = performance.now();
    const view = await registry.query('users', { index: index + 1_000, waitMs: 30_000 });
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(view.index).toBeLessThan(index + 1_000);
    expect(view.healthy.map((i) => i.id)).toEqual(['users-1']);
  });
});

describe('a registry from its URL', () => {
  it('reads etcd:// as the members of an etcd cluster, with credentials, and etcds:// as TLS', () => {
    expect(parseRegistryUrl('etcd://a:2379,10.0.0.2:2379')).toEqual({
      kind: 'etcd',
      endpoints: ['http://a:2379', 'http://10.0.0.2:2379'],
    });
    expect(parseRegistryUrl('etcds://svc:p%40ss@a:2379')).toEqual({
      kind: 'etcd',
      endpoints: ['https://a:2379'],
      auth: { username: 'svc', password: 'p@ss' },
    });
    expect(parseRegistryUrl('http://127.0.0.1:8500')).toEqual({ kind: 'consul', url: 'http://127.0.0.1:8500' });
  });

  it('makes an EtcdRegistry or a ConsulRegistry, without connecting', async () => {
    const etcdRegistry = registryFromUrl('etcd://127.0.0.1:2379');
    const consul = registryFromUrl('http://127.0.0.1:8500', { token: 't' });
    expect(etcdRegistry).toBeInstanceOf(EtcdRegistry);
    expect(consul).toBeInstanceOf(ConsulRegistry);
    await Promise.all([etcdRegistry.close(), consul.close()]);
  });

  it.each([
    ['etcd://a', '"a" in etcd://a is not host:port'],
    ['etcd://a:2379,', '"" in etcd://a:2379, is not host:port'],
    ['etcd://user@a:2379', 'etcd credentials must be user:password@'],
    ['localhost:8500', 'must be an http(s):// URL with a host'],
  ])('refuses %s, naming the setting', (url, message) => {
    let error: unknown;
    try {
      parseRegistryUrl(url, 'TRELLIS_REGISTRY_URL');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('TRELLIS_REGISTRY_URL');
    expect((error as Error).message).toContain(message);
  });
});
