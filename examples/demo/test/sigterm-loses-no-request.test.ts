import { fileURLToPath } from 'node:url';
import { ServiceClient } from '@trellis/client';
import { ConsulRegistry, Discovery } from '@trellis/registry';
import { ManagedProcess } from '../src/managed-process.js';
import { startRegistry } from '../src/system.js';

const usersScript = fileURLToPath(new URL('../../users/dist/main.js', import.meta.url));
// The upper bound of the wait for callers; the shutdown itself decides when they are quiet.
const drainMs = 3_000;

// Issue 13's promise, every part a separate process: the registry server and two users
// instances; the test process calls users by name through Discovery as any caller does.
describe('SIGTERM to one of two instances under load', () => {
  let registry: ManagedProcess;
  const users: ManagedProcess[] = [];
  let watcher: ConsulRegistry;
  let discovery: Discovery;
  let client: ServiceClient;
  const logs: string[] = [];

  beforeAll(async () => {
    registry = await startRegistry({ registryArgs: ['--dev'], output: (line) => logs.push(line) });
    const env = {
      HOST: '127.0.0.1',
      PORT: '0',
      TRELLIS_REGISTRY_URL: registry.url,
      TRELLIS_LOG_LEVEL: 'info',
      TRELLIS_DRAIN_MS: String(drainMs),
    };
    users.push(
      ...(await Promise.all(
        ['users-1', 'users-2'].map((name) =>
          ManagedProcess.start({
            name,
            script: usersScript,
            env,
            // The line run() prints; at log level info, pino's own JSON line says "listening on" first.
            readyPattern: /^users listening on (http:\/\/\S+) as /,
            output: (line) => logs.push(line),
          }),
        ),
      )),
    );
    watcher = new ConsulRegistry({ url: registry.url });
    discovery = new Discovery(watcher);
    client = new ServiceClient({ service: 'users', discovery });
  }, 30_000);
  afterAll(async () => {
    await client?.close();
    await discovery?.close();
    await watcher?.close();
    await Promise.all(users.map((u) => u.stop()));
    await registry?.stop();
  });

  it('fails no request, and the instance exits 0 within drainMs and a second', async () => {
    const [leaving, staying] = users as [ManagedProcess, ManagedProcess];
    const idOf = (p: ManagedProcess): string => `users-127.0.0.1-${new URL(p.url).port}`;
    // Both instances are registered before they print their ready line.
    expect((await discovery.instances('users')).map((i) => i.id).sort()).toEqual([idOf(leaving), idOf(staying)].sort());

    const loops = 8;
    const maxPerLoop = 2_000; // the bound; the loops stop earlier, once enough ran after the exit
    let sent = 0;
    const failures: string[] = [];
    const servedBy = { leavingAfterSignal: 0, stayingAfterExit: 0 };
    // When SIGTERM was sent and when the process had exited, by performance.now().
    const at: { signalled?: number; exited?: number } = {};
    let afterExit = 0;
    let startSigterm!: () => void;
    const warmedUp = new Promise<void>((resolve) => (startSigterm = resolve));
    const loop = async (): Promise<void> => {
      for (let i = 0; i < maxPerLoop && afterExit < 400; i++) {
        sent++;
        try {
          // One attempt each: no retry and no failover may hide a request the shutdown lost.
          const user = await client.get<{ servedBy: string }>('/users/1', { retry: false, template: '/users/:id' });
          if (at.signalled !== undefined && user.servedBy === idOf(leaving)) servedBy.leavingAfterSignal++;
          if (at.exited !== undefined && user.servedBy === idOf(staying)) servedBy.stayingAfterExit++;
        } catch (error) {
          failures.push(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
        }
        if (at.exited !== undefined) afterExit++;
        if (sent === 400) startSigterm();
      }
    };
    const load = Promise.all(Array.from({ length: loops }, loop));

    await warmedUp;
    const signalled = (at.signalled = performance.now());
    const code = await leaving.stop('SIGTERM', drainMs + 10_000);
    const exited = (at.exited = performance.now());
    await load;

    const shutdownMs = exited - signalled;
    const summary = logs.find((l) => l.startsWith('[users-1]') && l.includes('shut down in'));
    console.log(
      `sent ${sent}, failed ${failures.length}; SIGTERM to exit ${Math.round(shutdownMs)} ms; ` +
        `served by the leaving instance after SIGTERM ${servedBy.leavingAfterSignal}; ${summary ?? 'no summary line'}`,
    );
    expect(failures).toEqual([]);
    expect(code).toBe(0);
    expect(shutdownMs).toBeLessThan(drainMs + 1_000);
    // The load went on across the shutdown: the other instance took it.
    expect(servedBy.stayingAfterExit).toBeGreaterThan(0);
    expect(summary).toBeDefined();
  }, 60_000);
});
