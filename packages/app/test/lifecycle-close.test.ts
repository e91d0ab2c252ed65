import { connect, type Socket } from 'node:net';
import { ConcurrencyLimit } from '@trellis/resilience';
import { MemoryRegistry } from '@trellis/registry';
import { TrellisApp, type AppOptions } from '@trellis/app';
import { LogCollector } from './log-collector.js';

/** A route that answers only when released; `entered` resolves once a request is in it. */
function holdRoute(app: TrellisApp, path: string): { entered: Promise<void>; release: () => void } {
  let enter!: () => void;
  const entered = new Promise<void>((resolve) => (enter = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  app.http.get(path, async () => {
    enter();
    await released;
    return { done: true };
  });
  return { entered, release };
}

async function timed(work: Promise<void>): Promise<number> {
  const started = performance.now();
  await work;
  return performance.now() - started;
}

describe('closing a TrellisApp', () => {
  let registry: MemoryRegistry;
  const apps: TrellisApp[] = [];
  const sockets: Socket[] = [];

  function app(options: Partial<AppOptions> = {}): TrellisApp {
    const created = new TrellisApp({ service: 'users', registry, logLevel: 'silent', drainMs: 0, ...options });
    apps.push(created);
    return created;
  }

  beforeEach(() => {
    registry = new MemoryRegistry();
  });
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await Promise.all(apps.splice(0).map((a) => a.close()));
    await registry.close();
  });

  // Node's fetch (undici) opens a spare connection when a request is aborted and keeps it 4 s,
  // sending nothing on it; close() used to wait for it (the inbound-limit tests' 4 s).
  it('does not wait for the spare connection a caller opens after aborting a request', async () => {
    const users = app();
    users.limitInbound({ concurrency: new ConcurrencyLimit({ maxConcurrent: 1 }) });
    let enter!: () => void;
    const entered = new Promise<void>((resolve) => (enter = resolve));
    users.http.get('/hang', async (request) => {
      enter();
      await new Promise((resolve) => request.inbound.signal.addEventListener('abort', resolve, { once: true }));
      return { gone: true };
    });
    const { url } = await users.start();
    let connections = 0;
    const spare = new Promise<void>((resolve) =>
      users.http.server.on('connection', () => {
        if (++connections === 2) resolve();
      }),
    );
    const caller = new AbortController();
    const hanging = fetch(`${url}/hang`, { signal: caller.signal }).catch((e: unknown) => e);
    await entered;
    caller.abort();
    expect(await hanging).toMatchObject({ name: 'AbortError' });
    // Node 20's server.close() waited for it until undici let it go; Node 22+ closes it at once.
    await spare;

    expect(await timed(users.close())).toBeLessThan(1_500);
  });

  it('closes a connection that never sent a request at once', async () => {
    const users = app();
    const { url } = await users.start();
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    sockets.push(socket);
    await new Promise((resolve) => socket.once('connect', resolve));
    const ended = new Promise((resolve) => socket.once('close', resolve));

    expect(await timed(users.close())).toBeLessThan(1_500);
    await ended;
  });

  it('answers the requests in flight before it closes, and closes their connections after', async () => {
    const users = app();
    const { entered, release } = holdRoute(users, '/slow');
    const { url } = await users.start();
    const slow = fetch(`${url}/slow`);
    await entered;

    const closing = users.close();
    let closed = false;
    void closing.then(() => (closed = true));
    // Stopped listening: a new connection is refused while the request in flight is served.
    await expect(fetch(`${url}/slow`)).rejects.toThrow();
    expect(closed).toBe(false);
    release();
    const answer = await slow;
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ done: true });
    await closing;
  });

  it('cuts the requests still in flight after shutdownTimeoutMs, and says how many', async () => {
    const logs = new LogCollector();
    const users = app({ shutdownTimeoutMs: 200, logLevel: 'info', logDestination: logs, trellisPage: false });
    const { entered } = holdRoute(users, '/never');
    const { url } = await users.start();
    const never = fetch(`${url}/never`).catch((e: unknown) => e);
    await entered;

    const took = await timed(users.close());
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(1_500);
    expect(await never).toMatchObject({ message: 'fetch failed' });
    expect(logs.warnings.map((l) => l.msg)).toEqual([
      'shutdown: cut 1 connections with 1 requests still in flight after 200 ms',
    ]);
  });
});
