import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TrellisApp } from '@trellis/app';
import { gatewaySystem } from './gateway-fixtures.js';
import { within } from './ws-client.js';

const fixture = fileURLToPath(new URL('./fixtures/ws-echo-service.js', import.meta.url));

// A service instance that takes every request and breaks its connection without an answer.
function breaksConnections(app: TrellisApp): void {
  app.http.all('/who', async (request) => {
    request.raw.socket.destroy();
    return new Promise(() => undefined);
  });
}

function answers(app: TrellisApp): void {
  app.http.all('/who', async () => ({ instance: app.instance?.id }));
}

describe('retries and failover through the route client', () => {
  const system = gatewaySystem();
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  });

  async function startEcho(id: string): Promise<ChildProcess> {
    const child = spawn(process.execPath, [fixture], {
      env: { ...process.env, REGISTRY_URL: await system.registryUrl(), INSTANCE_ID: id },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    await within(
      15_000,
      `${id} listening`,
      new Promise<void>((resolve) => {
        let seen = '';
        child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
          seen += chunk;
          if (seen.includes('listening on')) resolve();
        });
      }),
    );
    return child;
  }

  it('goes on serving every request, POST included, when one of two instances is killed', async () => {
    const doomed = await startEcho('echo-a');
    await startEcho('echo-b');
    const { url } = await system.gateway({
      routes: [{ match: { pathPrefix: '/' }, service: 'echo', strategy: 'round-robin' }],
    });
    const servedBy = new Set<string>();
    for (let i = 0; i < 4; i++) servedBy.add((await fetch(`${url}/who`)).headers.get('x-served-by') ?? '');
    expect(servedBy).toEqual(new Set(['echo-a', 'echo-b']));

    doomed.kill('SIGKILL');
    await new Promise((resolve) => doomed.once('exit', resolve));
    // Still registered (its TTL has not run out): connections to it are refused, and each call fails over.
    for (let i = 0; i < 6; i++) {
      const answer = await fetch(`${url}/who`, { method: i % 2 === 0 ? 'GET' : 'POST' });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('x-served-by')).toBe('echo-b');
    }
  });

  it('retries what may have arrived only for idempotent methods, unless the route says every method is', async () => {
    await system.service('flaky', breaksConnections, { instanceId: 'flaky-broken' });
    await system.service('flaky', answers, { instanceId: 'flaky-good' });
    const { url } = await system.gateway({
      routes: [
        {
          match: { pathPrefix: '/safe/' },
          service: 'flaky',
          stripPrefix: true,
          strategy: 'round-robin',
          idempotent: true,
        },
        { match: { pathPrefix: '/' }, service: 'flaky', strategy: 'round-robin' },
      ],
    });
    // Round robin over two: of two calls, one is first sent to the broken instance.
    const statuses = async (path: string, method: string): Promise<number[]> => [
      (await fetch(`${url}${path}`, { method })).status,
      (await fetch(`${url}${path}`, { method })).status,
    ];
    expect(await statuses('/who', 'GET')).toEqual([200, 200]);
    expect((await statuses('/who', 'POST')).sort()).toEqual([200, 503]);
    expect(await statuses('/safe/who', 'POST')).toEqual([200, 200]);
  });
});
