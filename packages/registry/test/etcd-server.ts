import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pauseProcess } from '../../registry-server/test/process-tree.js';

/** Debian's etcd (3.4), which .ci/run installs. */
export const etcdBinary = '/usr/bin/etcd';

/** One member of a cluster started by {@link startEtcdCluster}. */
export interface EtcdMember {
  readonly name: string;
  /** `http://127.0.0.1:<port>`, what clients connect to. */
  readonly clientUrl: string;
  readonly running: boolean;
}

/** A real etcd cluster on 127.0.0.1, each member's data in a temporary folder. */
export interface EtcdCluster {
  readonly members: readonly EtcdMember[];
  /** Every member's client URL, comma-separated host:port, as `etcd://` takes them. */
  readonly hosts: string;
  /** SIGKILLs a member and waits for its exit. */
  kill(name: string): Promise<void>;
  /**
   * SIGSTOPs a member and resolves once it is stopped: it keeps its connections open and answers
   * nothing, as a hung one does.
   */
  pause(name: string): Promise<void>;
  /** SIGCONTs a paused member. */
  resume(name: string): void;
  /** The watches a member holds now (its etcd_debugging_mvcc_watcher_total). */
  watchers(name: string): Promise<number>;
  /** Starts a killed member again on its ports and data, and waits until it serves. */
  restart(name: string): Promise<void>;
  /** The name of the member that leads now, as a running member reports it. */
  leader(): Promise<string>;
  /** Per running member, the revision it has applied. */
  revisions(): Promise<Record<string, number>>;
  /** SIGKILLs every member and removes the data. */
  stop(): Promise<void>;
}

/** A port the system had free a moment ago (taken, then given back). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface MemberState {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  child: ChildProcess | undefined;
  exited: Promise<void>;
  /** The end of what the member wrote on stderr, for the error of a member that exits before it serves. */
  stderr: string;
}

// etcd's JSON gateway on the client port: POST /v3/maintenance/status answers the member's id,
// the leader's id and the revision (int64s as strings).
async function status(clientUrl: string): Promise<{ header: { member_id: string; revision: string }; leader: string }> {
  const response = await fetch(`${clientUrl}/v3/maintenance/status`, {
    method: 'POST',
    body: '{}',
    signal: AbortSignal.timeout(2_000),
  });
  return (await response.json()) as { header: { member_id: string; revision: string }; leader: string };
}

/**
 * Starts `size` etcd members on 127.0.0.1 (distinct client and peer ports, one temporary data
 * folder each) as one new cluster, with a short heartbeat and election timeout so that a lost
 * leader is replaced within about a second (but not so short that a slow fsync on a loaded
 * machine starts an election by itself), and resolves once every member is healthy. Fails
 * with the reason when the binary is missing or a member exits.
 */
export async function startEtcdCluster(size = 1): Promise<EtcdCluster> {
  if (!existsSync(etcdBinary)) {
    throw new Error(`${etcdBinary} not found: install Debian's etcd-server package (.ci/run does)`);
  }
  const root = await mkdtemp(path.join(tmpdir(), 'trellis-etcd-'));
  const members: MemberState[] = [];
  for (let i = 1; i <= size; i++) {
    members.push({
      name: `m${i}`,
      clientUrl: `http://127.0.0.1:${await freePort()}`,
      peerUrl: `http://127.0.0.1:${await freePort()}`,
      dataDir: path.join(root, `m${i}`),
      child: undefined,
      exited: Promise.resolve(),
      stderr: '',
    });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const launch = (member: MemberState): void => {
    const child = spawn(
      etcdBinary,
      [
        `--name=${member.name}`,
        `--data-dir=${member.dataDir}`,
        `--listen-client-urls=${member.clientUrl}`,
        `--advertise-client-urls=${member.clientUrl}`,
        `--listen-peer-urls=${member.peerUrl}`,
        `--initial-advertise-peer-urls=${member.peerUrl}`,
        `--initial-cluster=${initialCluster}`,
        '--initial-cluster-state=new',
        '--initial-cluster-token=trellis-test',
        '--heartbeat-interval=50',
        '--election-timeout=500',
        '--log-level=error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    member.stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      member.stderr = (member.stderr + chunk.toString()).slice(-2_000);
    });
    member.child = child;
    member.exited = new Promise<void>((resolve) =>
      child.once('exit', () => {
        member.child = undefined;
        resolve();
      }),
    );
  };
  const healthy = async (member: MemberState): Promise<void> => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (member.child === undefined) {
        throw new Error(`etcd member ${member.name} exited before it served: ${member.stderr}`);
      }
      try {
        const response = await fetch(`${member.clientUrl}/health`, { signal: AbortSignal.timeout(1_000) });
        if (response.ok && ((await response.json()) as { health?: string }).health === 'true') return;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`etcd member ${member.name} not healthy within 15 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const byName = (name: string): MemberState => {
    const member = members.find((m) => m.name === name);
    if (member === undefined) throw new Error(`no etcd member ${name}`);
    return member;
  };
  const kill = async (member: MemberState): Promise<void> => {
    member.child?.kill('SIGKILL');
    await member.exited;
  };
  const stop = async (): Promise<void> => {
    await Promise.all(members.map(kill));
    await rm(root, { recursive: true, force: true });
  };

  try {
    members.forEach(launch);
    await Promise.all(members.map(healthy));
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    members: members.map((m) => ({
      name: m.name,
      clientUrl: m.clientUrl,
      get running() {
        return m.child !== undefined;
      },
    })),
    hosts: members.map((m) => new URL(m.clientUrl).host).join(','),
    kill: (name) => kill(byName(name)),
    pause: async (name) => {
      const pid = byName(name).child?.pid;
      if (pid !== undefined) await pauseProcess(pid);
    },
    resume: (name) => void byName(name).child?.kill('SIGCONT'),
    watchers: async (name) => {
      const response = await fetch(`${byName(name).clientUrl}/metrics`, { signal: AbortSignal.timeout(2_000) });
      const line = /^etcd_debugging_mvcc_watcher_total (\S+)$/m.exec(await response.text());
      if (line === null) throw new Error(`etcd member ${name} reports no etcd_debugging_mvcc_watcher_total`);
      return Number(line[1]);
    },
    restart: async (name) => {
      const member = byName(name);
      if (member.child !== undefined) throw new Error(`etcd member ${name} is running`);
      launch(member);
      await healthy(member);
    },
    leader: async () => {
      const ids = new Map<string, string>();
      let leader: string | undefined;
      for (const member of members.filter((m) => m.child !== undefined)) {
        const answer = await status(member.clientUrl);
        ids.set(answer.header.member_id, member.name);
        leader ??= answer.leader;
      }
      const name = leader === undefined ? undefined : ids.get(leader);
      if (name === undefined) throw new Error('no running etcd member names a running leader');
      return name;
    },
    revisions: async () => {
      const out: Record<string, number> = {};
      for (const member of members.filter((m) => m.child !== undefined)) {
        out[member.name] = Number((await status(member.clientUrl)).header.revision);
      }
      return out;
    },
    stop,
  };
}
