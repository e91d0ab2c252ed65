import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '@trellis/core';
import { closeAll, health, serviceCheck, startServer, type HealthEntry, type Running } from './helpers.js';

type Check = NonNullable<ReturnType<typeof serviceCheck>>;

/** What the target saw of one check request. */
interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A service's health endpoint whose answer the test switches; it never answers while `hang` is set. */
class Target {
  status = 200;
  body = 'UP';
  hang = false;
  readonly seen: Seen[] = [];
  readonly #server: http.Server;
  #arrived: (() => void)[] = [];

  constructor() {
    this.#server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        this.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        for (const resolve of this.#arrived.splice(0)) resolve();
        if (this.hang) return;
        res.writeHead(this.status, { 'content-type': 'text/plain' }).end(this.body);
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Resolves once `count` requests have arrived in all. */
  async requests(count: number): Promise<void> {
    while (this.seen.length < count) await new Promise<void>((resolve) => this.#arrived.push(resolve));
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/**
 * Follows the service's entries with blocking queries until `predicate` holds for its check
 * (or for the entry list), so that the test waits on the status change event, not on time.
 */
async function until(
  running: Running,
  service: string,
  predicate: (check: Check | undefined, entries: HealthEntry[]) => boolean,
): Promise<Check | undefined> {
  let index = 0;
  for (let i = 0; i < 50; i++) {
    const answer = await health(running.url, service, index === 0 ? '' : `?index=${index}`);
    const check = serviceCheck(answer.entries[0]);
    if (predicate(check, answer.entries)) return check;
    index = answer.index;
  }
  throw new Error(`the check of ${service} never reached the state the test waits for`);
}

describe('HTTP checks', () => {
  let clock: ManualClock;
  let running: Running;
  let target: Target;
  let base: string;

  beforeEach(async () => {
    clock = new ManualClock();
    running = await startServer(clock);
    target = new Target();
    base = await target.listen();
  });
  afterEach(async () => {
    await closeAll();
    await target.close();
  });

  const register = (check: Record<string, unknown>): Promise<unknown> =>
    running.consul.agent.service.register({ name: 'web', id: 'web-1', port: 80, check: check as never });

  it('runs at once and then every Interval: 2xx passing, 500 critical, 429 warning, with Consul-like Output', async () => {
    await register({ http: `${base}/health`, interval: '10s' });
    let check = await until(running, 'web', (c) => c?.Status === 'passing');
    expect(check?.Output).toBe(`HTTP GET ${base}/health: 200 OK Output: UP`);
    expect(check?.Type).toBe('http');

    target.status = 500;
    target.body = 'database down';
    clock.advance(10_000);
    check = await until(running, 'web', (c) => c?.Status === 'critical');
    expect(check?.Output).toBe(`HTTP GET ${base}/health: 500 Internal Server Error Output: database down`);

    target.status = 429;
    target.body = 'slow down';
    clock.advance(10_000);
    check = await until(running, 'web', (c) => c?.Status === 'warning');
    expect(check?.Output).toBe(`HTTP GET ${base}/health: 429 Too Many Requests Output: slow down`);

    target.status = 204;
    target.body = '';
    clock.advance(10_000);
    check = await until(running, 'web', (c) => c?.Status === 'passing');
    expect(check?.Output).toBe(`HTTP GET ${base}/health: 204 No Content Output: `);
    // One request at registration and one per interval, no more.
    expect(target.seen).toHaveLength(4);
    expect(target.seen[0]).toMatchObject({
      method: 'GET',
      url: '/health',
      headers: { 'user-agent': 'Consul Health Check', accept: 'text/plain, text/*, */*' },
    });
  });

  it('describes the check in health and agent/checks with its Interval, Timeout and Definition', async () => {
    await register({ http: `${base}/health`, interval: '1m30s', timeout: '2s', deregistercriticalserviceafter: '5m' });
    await until(running, 'web', (c) => c?.Status === 'passing');
    const checks = (await running.consul.agent.checks()) as unknown as Record<string, Record<string, unknown>>;
    expect(checks['service:web-1']).toMatchObject({
      Type: 'http',
      Interval: '1m30s',
      Timeout: '2s',
      Definition: {
        HTTP: `${base}/health`,
        Method: 'GET',
        Header: {},
        Interval: '1m30s',
        Timeout: '2s',
        DeregisterCriticalServiceAfter: '5m0s',
      },
    });
  });

  it('sends the Method, Header and Body the check gives, and keeps at most 4 KiB of the answer', async () => {
    target.body = 'x'.repeat(10_000);
    await register({
      http: `${base}/deep?x=1`,
      interval: '10s',
      method: 'POST',
      header: { 'X-Check': ['a', 'b'], 'User-Agent': ['trellis-probe'] },
      body: 'ping',
    });
    const check = await until(running, 'web', (c) => c?.Status === 'passing');
    expect(target.seen[0]).toMatchObject({
      method: 'POST',
      url: '/deep?x=1',
      body: 'ping',
      headers: { 'x-check': 'a, b', 'user-agent': 'trellis-probe' },
    });
    expect(check?.Output).toBe(`HTTP POST ${base}/deep?x=1: 200 OK Output: ${'x'.repeat(4096)}`);
  });

  it('turns critical when the answer does not come within Timeout', async () => {
    target.hang = true;
    await register({ http: `${base}/health`, interval: '1m', timeout: '3s', status: 'passing' });
    await target.requests(1);
    clock.advance(3_000);
    const check = await until(running, 'web', (c) => c?.Status === 'critical');
    expect(check?.Output).toBe(`Get "${base}/health": timed out after 3000 ms (Client.Timeout exceeded)`);
  });

  it('turns critical when nothing listens at the URL', async () => {
    await target.close();
    await register({ http: `${base}/health`, interval: '10s', status: 'passing' });
    const check = await until(running, 'web', (c) => c?.Status === 'critical');
    expect(check?.Output).toMatch(new RegExp(`^Get "${base}/health": connect ECONNREFUSED`));
  });

  it('removes the service after DeregisterCriticalServiceAfter when its HTTP check stays critical', async () => {
    target.status = 503;
    await register({ http: `${base}/health`, interval: '5m', status: 'passing', deregistercriticalserviceafter: '1m' });
    await until(running, 'web', (c) => c?.Status === 'critical');
    clock.advance(59_999);
    expect((await health(running.url, 'web')).entries).toHaveLength(1);
    clock.advance(1);
    await until(running, 'web', (_c, entries) => entries.length === 0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('stops running the check when its service is deregistered', async () => {
    await register({ http: `${base}/health`, interval: '10s' });
    await until(running, 'web', (c) => c?.Status === 'passing');
    expect(clock.pendingTimers).toBe(1);
    await running.consul.agent.service.deregister('web-1');
    expect(clock.pendingTimers).toBe(0);
    clock.advance(60_000);
    // A request the server would still make reaches the target before this round trip ends.
    await fetch(base);
    expect(target.seen.map((s) => s.url)).toEqual(['/health', '/']);
  });

  it('stops running checks when the server closes, cancelling a request in flight', async () => {
    target.hang = true;
    await register({ http: `${base}/health`, interval: '10s' });
    await target.requests(1);
    expect(clock.pendingTimers).toBeGreaterThan(0); // the request's timeout
    await running.server.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('runs a check of the node registered on its own, and stops it on check/deregister', async () => {
    await running.consul.agent.check.register({ name: 'gateway', http: `${base}/up`, interval: '10s' } as never);
    let checks: Record<string, { Status: string; Output: string; ServiceID: string }> = {};
    for (let i = 0; i < 1_000 && checks['gateway']?.Status !== 'passing'; i++) {
      // The node's checks have no blocking read of their own here: wait on health/node.
      const index = (await fetch(`${running.url}/v1/health/node/trellis`)).headers.get('x-consul-index');
      checks = await running.consul.agent.checks();
      if (checks['gateway']?.Status === 'passing') break;
      await fetch(`${running.url}/v1/health/node/trellis?index=${index}`);
      checks = await running.consul.agent.checks();
    }
    expect(checks['gateway']).toMatchObject({
      Status: 'passing',
      ServiceID: '',
      Output: `HTTP GET ${base}/up: 200 OK Output: UP`,
    });
    await running.consul.agent.check.deregister('gateway');
    expect(clock.pendingTimers).toBe(0);
  });

  it('restarts the check with the new definition when the service is registered again', async () => {
    await register({ http: `${base}/old`, interval: '10s' });
    await until(running, 'web', (c) => c?.Output.includes('/old') === true);
    await register({ http: `${base}/new`, interval: '10s' });
    const check = await until(running, 'web', (c) => c?.Output.includes('/new') === true);
    expect(check?.Status).toBe('passing');
    expect(clock.pendingTimers).toBe(1);
  });
});
