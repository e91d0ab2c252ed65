import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TrellisApp } from '@trellis/app';
import { gatewaySystem } from './gateway-fixtures.js';
import { TestSocket, within } from './ws-client.js';

// The echo service as its own process (fixtures/ws-echo-service.js, built packages), so that
// its SIGTERM drain is the real one: deregister, drain, close, exit.
const fixture = fileURLToPath(new URL('./fixtures/ws-echo-service.js', import.meta.url));

interface EchoProcess {
  readonly child: ChildProcess;
  readonly id: string;
  /** Resolves at the first stdout line matching `pattern`. */
  line(pattern: RegExp): Promise<string>;
  readonly exited: Promise<number | null>;
}

describe('a WebSocket through the gateway while the instance behind it drains', () => {
  const system = gatewaySystem();
  const children: ChildProcess[] = [];
  const sockets: TestSocket[] = [];
  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  });

  async function startEcho(id: string): Promise<EchoProcess> {
    const child = spawn(process.execPath, [fixture], {
      env: { ...process.env, REGISTRY_URL: await system.registryUrl(), INSTANCE_ID: id },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    let seen = '';
    const watchers: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      seen += chunk;
      for (const w of [...watchers]) {
        const line = seen.split('\n').find((l) => w.pattern.test(l));
        if (line !== undefined) {
          watchers.splice(watchers.indexOf(w), 1);
          w.resolve(line);
        }
      }
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const line = (pattern: RegExp): Promise<string> => {
      const found = seen.split('\n').find((l) => pattern.test(l));
      if (found !== undefined) return Promise.resolve(found);
      return within(
        15_000,
        `"${String(pattern)}" from ${id}`,
        new Promise((resolve) => watchers.push({ pattern, resolve })),
      );
    };
    await line(/listening on/);
    return { child, id, line, exited };
  }

  /** Resolves when the gateway's discovery lists `ids` (and no other) for "echo". */
  function lists(gateway: TrellisApp, ids: string[]): Promise<void> {
    const now = (): boolean => {
      const listed = (gateway.discovery.describe('echo')?.instances ?? []).map((i) => i.id).sort();
      return JSON.stringify(listed) === JSON.stringify([...ids].sort());
    };
    if (now()) return Promise.resolve();
    return within(
      10_000,
      `the gateway listing ${ids.join(', ')}`,
      new Promise<void>((resolve) => {
        const watch = gateway.discovery.onChanged(() => {
          if (now()) {
            watch.dispose();
            resolve();
          }
        });
      }),
    );
  }

  it('keeps carrying messages during the drain, sends new upgrades to the other instance, and closes when the drained one exits', async () => {
    const first = await startEcho('echo-a');
    const second = await startEcho('echo-b');
    const { app, url } = await system.gateway({
      routes: [
        {
          match: { pathPrefix: '/echo/' },
          service: 'echo',
          stripPrefix: true,
          websocket: true,
          strategy: 'round-robin',
        },
      ],
    });
    const ws = `${url.replace('http', 'ws')}/echo/`;
    // Open sockets until one lands on echo-a (round robin: within two).
    let onFirst: TestSocket | undefined;
    for (let i = 0; i < 2 && onFirst === undefined; i++) {
      const socket = new TestSocket(ws);
      sockets.push(socket);
      await socket.opened();
      const hello = JSON.parse(await socket.next()) as { instance: string };
      if (hello.instance === first.id) onFirst = socket;
    }
    if (onFirst === undefined) throw new Error('no socket landed on echo-a');
    await lists(app, [first.id, second.id]);

    first.child.kill('SIGTERM');
    await first.line(/^draining/);
    // Draining: the open socket still carries messages both ways.
    expect(await onFirst.send('during the drain')).toBe(`${first.id}:during the drain`);

    // The registry dropped it; the gateway's discovery follows, and new upgrades go to the other.
    await lists(app, [second.id]);
    for (let i = 0; i < 2; i++) {
      const fresh = new TestSocket(ws);
      sockets.push(fresh);
      await fresh.opened();
      expect((JSON.parse(await fresh.next()) as { instance: string }).instance).toBe(second.id);
    }

    // When the drained instance is gone, the client sees a close, not a hang.
    await within(10_000, 'the close of the drained instance’s socket', onFirst.closed);
    expect(await within(10_000, 'echo-a exiting', first.exited)).toBe(0);
  });
});
