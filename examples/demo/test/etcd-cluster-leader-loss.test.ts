import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EtcdRegistry } from '@trellis/registry';
import { startEtcdCluster, type EtcdCluster } from '../../../packages/registry/test/etcd-server.js';
import { ManagedProcess } from '../src/managed-process.js';

const script = (service: string): string => fileURLToPath(new URL(`../../${service}/dist/main.js`, import.meta.url));

// Past one machine on etcd: three etcd members, three users instances and the forum as real
// processes told only TRELLIS_REGISTRY_URL=etcd://<the three members>. The forum is called
// steadily while the etcd leader is killed with SIGKILL.
describe('the example system on a three-member etcd cluster', () => {
  let etcd: EtcdCluster;
  let dataDir: string;
  const processes: ManagedProcess[] = [];
  const logs: string[] = [];
  let forum: ManagedProcess;

  const start = async (name: string, service: string): Promise<ManagedProcess> => {
    const started = await ManagedProcess.start({
      name,
      script: script(service),
      env: {
        HOST: '127.0.0.1',
        PORT: '0',
        TRELLIS_REGISTRY_URL: `etcd://${etcd.hosts}`,
        TRELLIS_DATA_DIR: dataDir,
        TRELLIS_LOG_LEVEL: 'warn',
        TRELLIS_DRAIN_MS: '300',
        // A lease of 2 s, kept alive every 667 ms: an election must not cost an instance its lease.
        TRELLIS_TTL_MS: '2000',
      },
      output: (line) => logs.push(line),
    });
    processes.push(started);
    return started;
  };
  const idOf = (process: ManagedProcess): string => `users-127.0.0.1-${new URL(process.url).port}`;

  beforeAll(async () => {
    etcd = await startEtcdCluster(3);
    dataDir = await mkdtemp(path.join(tmpdir(), 'trellis-etcd-system-'));
    await Promise.all(['users-1', 'users-2', 'users-3'].map((name) => start(name, 'users')));
    forum = await start('forum', 'forum');
  }, 60_000);
  afterAll(async () => {
    await Promise.all(processes.map((p) => p.stop()));
    await etcd?.stop();
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  });

  it('loses no call while the etcd leader dies; the cluster elects another, registrations and watches go on, and the old leader catches up', async () => {
    const served = new Set<string>();
    const failures: string[] = [];
    let calls = 0;
    let calling = true;
    const steady = (async () => {
      while (calling) {
        calls++;
        try {
          const response = await fetch(`${forum.url}/threads/1`, { signal: AbortSignal.timeout(5_000) });
          const body = (await response.json()) as { authorServedBy?: string };
          if (response.status !== 200) failures.push(`${response.status} ${JSON.stringify(body)}`);
          else if (body.authorServedBy !== undefined) served.add(body.authorServedBy);
        } catch (error) {
          failures.push(String(error));
        }
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();
    const until = async (what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 15_000) => {
      const deadline = Date.now() + timeoutMs;
      while (!(await condition())) {
        if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}\n${logs.join('\n')}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    try {
      const users = processes.filter((p) => p.name.startsWith('users-'));
      await until('the forum calls all three users instances', () => users.every((u) => served.has(idOf(u))));

      // A slow disk can start an election of its own: wait for a leader named, not only asked.
      let leader = '';
      await until('a leader', async () => {
        leader = await etcd.leader().catch(() => '');
        return leader !== '';
      });
      await etcd.kill(leader);
      await until('a new leader', async () => {
        try {
          return (await etcd.leader()) !== leader;
        } catch {
          return false;
        }
      });
      const callsAtKill = calls;

      // A registration through the remaining members reaches the forum's watch.
      const fourth = await start('users-4', 'users');
      served.clear();
      await until('the forum calls the instance registered after the leader died', () => served.has(idOf(fourth)));
      // Longer than two TTLs after the kill, the first three are still listed, and never had to
      // register again: their leases were kept alive through the election.
      await new Promise((resolve) => setTimeout(resolve, 4_500));
      served.clear();
      await until('the forum still calls every instance', () => [...users, fourth].every((u) => served.has(idOf(u))));
      for (const u of users) {
        const status = (await (await fetch(`${u.url}/trellis`)).json()) as {
          registration?: { reregistrations?: number };
        };
        expect({ [u.name]: status.registration?.reregistrations }).toEqual({ [u.name]: 0 });
      }
      // Calls went on through the whole wait, not only before it (a loaded machine makes fewer).
      expect(calls - callsAtKill).toBeGreaterThan(10);

      await etcd.restart(leader);
      await until('the restarted member applies what the others have', async () => {
        const revisions = Object.values(await etcd.revisions());
        return revisions.length === 3 && new Set(revisions).size === 1;
      });
      const restarted = etcd.members.find((m) => m.name === leader)?.clientUrl ?? '';
      const direct = new EtcdRegistry({ endpoints: [restarted] });
      try {
        expect((await direct.list('users')).map((i) => i.id).sort()).toEqual([...users, fourth].map(idOf).sort());
      } finally {
        await direct.close();
      }
    } finally {
      calling = false;
      await steady;
    }
    expect(failures).toEqual([]);
  }, 60_000);
});
