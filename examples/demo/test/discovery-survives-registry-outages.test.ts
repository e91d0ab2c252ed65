import { ConsulRegistry, Discovery, type InstancesChanged } from '@trellis/registry';
import type { ManagedProcess } from '../src/managed-process.js';
import { startRegistry, startSystem, type RunningSystem } from '../src/system.js';

// Issue 4's promises, with every part a separate process: the registry server (--dev, in
// memory), three users instances and the forum. The test process watches users as any caller would.
const ttlMs = 3_000;
const heartbeatMs = ttlMs / 3;

describe('discovery through registry outages and instance deaths', () => {
  let system: RunningSystem;
  let registry: ManagedProcess;
  let watcher: ConsulRegistry;
  let discovery: Discovery;
  const logs: string[] = [];

  const idOf = (process: ManagedProcess): string => `users-127.0.0.1-${new URL(process.url).port}`;

  beforeAll(async () => {
    system = await startSystem({
      services: ['forum'],
      mailInstances: 1,
      usersInstances: 3,
      drainMs: 300,
      registryArgs: ['--dev'],
      serviceEnv: { TRELLIS_TTL_MS: String(ttlMs) },
      output: (line) => logs.push(line),
    });
    registry = system.registry;
  }, 30_000);
  afterAll(async () => {
    await discovery?.close();
    await watcher?.close();
    await system?.stop();
    await registry?.stop();
  });

  /** The users instance ids the registry lists as passing, read with a blocking query until `wanted` holds. */
  async function passingUsersUntil(wanted: (ids: string[]) => boolean, deadlineMs: number): Promise<string[]> {
    const until = performance.now() + deadlineMs;
    let index = 0;
    for (;;) {
      const response = await fetch(`${registry.url}/v1/health/service/users?passing&index=${index}&wait=1s`);
      const ids = ((await response.json()) as Array<{ Service: { ID: string } }>).map((e) => e.Service.ID).sort();
      if (wanted(ids)) return ids;
      if (performance.now() > until) throw new Error(`registry still lists ${JSON.stringify(ids)}`);
      index = Number(response.headers.get('x-consul-index'));
    }
  }

  function change(where: (c: InstancesChanged) => boolean): Promise<InstancesChanged> {
    return new Promise((resolve) => {
      const listener = discovery.onChanged((c) => {
        if (!where(c)) return;
        listener.dispose();
        resolve(c);
      });
    });
  }

  it('keeps every call succeeding while the registry is stopped for 10 s, and all register again within a heartbeat of its restart', async () => {
    const expected = [...system.users.map(idOf)].sort();
    await passingUsersUntil((ids) => ids.length === 3, 5_000);
    const port = Number(new URL(registry.url).port);
    const statuses: number[] = [];
    let calling = true;
    let calledTen = (): void => undefined;
    const warmedUp = new Promise<void>((resolve) => (calledTen = resolve));
    const caller = (async () => {
      for (let i = 0; i < 100_000 && calling; i++) {
        statuses.push((await fetch(`${system.forum!.url}/threads/1`)).status);
        if (statuses.length === 10) calledTen();
      }
    })();

    await warmedUp; // the forum has been calling users before the registry goes
    expect(await registry.stop('SIGTERM')).toBe(0);
    const callsBefore = statuses.length;
    await new Promise((resolve) => setTimeout(resolve, 10_000)); // the outage itself
    expect(statuses.length - callsBefore).toBeGreaterThan(50);

    registry = await startRegistry({ registryPort: port, registryArgs: ['--dev'], output: (line) => logs.push(line) });
    const restarted = performance.now();
    expect(await passingUsersUntil((ids) => ids.length === 3, 5_000)).toEqual(expected);
    const reregisteredMs = performance.now() - restarted;
    calling = false;
    await caller;

    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    // Each instance's next heartbeat is refused as unknown, and it registers again at once.
    expect(reregisteredMs).toBeLessThan(heartbeatMs + 500);
  }, 40_000);

  it('sees an instance that deregisters on SIGTERM gone in under a second', async () => {
    watcher = new ConsulRegistry({ url: registry.url });
    discovery = new Discovery(watcher);
    await discovery.instances('users');
    const [leaving] = system.users;
    const gone = change((c) => !c.instances.some((i) => i.id === idOf(leaving!)));
    const sent = performance.now();
    const exited = leaving!.stop('SIGTERM');
    await gone;
    const goneMs = performance.now() - sent;
    expect(await exited).toBe(0);
    expect(goneMs).toBeLessThan(1_000);
  }, 20_000);

  it('drops an instance killed with SIGKILL once its TTL runs out', async () => {
    const [, killed, staying] = system.users;
    expect((await discovery.instances('users')).map((i) => i.id)).toEqual([idOf(killed!), idOf(staying!)].sort());
    const dropped = change((c) => !c.instances.some((i) => i.id === idOf(killed!)));
    const sent = performance.now();
    expect(await killed!.stop('SIGKILL')).toBe('SIGKILL');
    const { instances } = await dropped;
    const droppedMs = performance.now() - sent;
    expect(instances.map((i) => i.id)).toEqual([idOf(staying!)]);
    // Nothing deregistered it: it went when its TTL, renewed every third of it, ran out.
    expect(droppedMs).toBeGreaterThan(ttlMs - heartbeatMs - 100);
    expect(droppedMs).toBeLessThan(ttlMs + 1_000);
  }, 20_000);
});
