import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConsulRegistry, EtcdRegistry, type Registry } from '@trellis/registry';
import { freePort } from './free-port.js';
import { measureCalls, type RunFigures } from './measure.js';

const samples = 200;

/** Register → visible in a watcher's view, on etcd and on the embedded server, in the same run. */
export interface VisibilityFigures {
  readonly etcd: RunFigures;
  readonly embedded: RunFigures;
}

/**
 * How long an instance takes from `register()` to a `ServiceWatch` of its service (what
 * Discovery keeps) on EtcdRegistry against a real etcd the bench starts (Debian's, one member),
 * and on ConsulRegistry against the embedded server at `embeddedUrl`: one registration at a
 * time, {@link samples} each.
 * @throws Error when /usr/bin/etcd is missing or does not start.
 */
export async function measureVisibility(embeddedUrl: string): Promise<VisibilityFigures> {
  const etcd = await startEtcd();
  try {
    const embedded = await visible(new ConsulRegistry({ url: embeddedUrl }));
    const onEtcd = await visible(new EtcdRegistry({ endpoints: [etcd.url] }));
    return { etcd: onEtcd, embedded };
  } finally {
    await etcd.stop();
  }
}

async function visible(registry: Registry): Promise<RunFigures> {
  const service = 'bench-visible';
  const watch = registry.watch(service, { floorMs: 0 });
  let n = 0;
  try {
    await watch.ready();
    return await measureCalls(
      async () => {
        const id = `${service}-${n++}`;
        const seen = new Promise<void>((resolve) => {
          const listener = watch.onEvent((event) => {
            if (event.type !== 'instance-added' || event.instance.id !== id) return;
            listener.dispose();
            resolve();
          });
        });
        await registry.register({
          instance: { id, service, address: '127.0.0.1', port: 20_000 + n, tags: [], meta: { weight: 1, labels: {} } },
          ttlMs: 300_000,
          deregisterAfterMs: 300_000,
        });
        await seen;
      },
      samples,
      1,
    );
  } finally {
    await watch.close();
    for (let i = 0; i < n; i++) await registry.deregister(`${service}-${i}`).catch(() => undefined);
    await registry.close();
  }
}

async function startEtcd(): Promise<{ url: string; stop(): Promise<void> }> {
  const binary = '/usr/bin/etcd';
  if (!existsSync(binary)) throw new Error(`${binary} not found: apt-get install etcd-server`);
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-bench-etcd-'));
  const url = `http://127.0.0.1:${await freePort()}`;
  const peer = `http://127.0.0.1:${await freePort()}`;
  const child = spawn(
    binary,
    [
      '--name=bench',
      `--data-dir=${dir}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=bench=${peer}`,
      '--log-level=error',
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    child.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 300; i++) {
    const healthy = await fetch(`${url}/health`)
      .then(async (r) => ((await r.json()) as { health?: string }).health === 'true')
      .catch(() => false);
    if (healthy) return { url, stop };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stop();
  throw new Error('etcd did not become healthy within 15 s');
}
