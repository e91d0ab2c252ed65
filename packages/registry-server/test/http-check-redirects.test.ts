import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '@trellis/core';
import { closeAll, health, serviceCheck, startServer, type Running } from './helpers.js';

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly body: string;
  readonly authorization: string | undefined;
}

/**
 * A service whose `/hop/<n>` answers `status` redirecting to `/hop/<n-1>`, and `/hop/0` answers
 * 200 "UP"; `/away` redirects to `other` (another host).
 */
class Redirector {
  status = 302;
  other = '';
  readonly seen: Seen[] = [];
  readonly #server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const url = req.url ?? '';
      this.seen.push({ method: req.method ?? '', url, body, authorization: req.headers.authorization });
      const hop = /^\/hop\/(\d+)$/.exec(url);
      if (url === '/away') return void res.writeHead(this.status, { location: this.other }).end();
      if (hop === null || hop[1] === '0') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('UP');
      res.writeHead(this.status, { location: `/hop/${Number(hop[1]) - 1}` }).end('moved');
    });
  });

  async listen(host = '127.0.0.1'): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, host, resolve));
    return `http://${host}:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

type Check = NonNullable<ReturnType<typeof serviceCheck>>;

// Follows the service's health with blocking queries until its check has run once.
async function firstResult(running: Running): Promise<Check> {
  let index = 0;
  for (let i = 0; i < 50; i++) {
    const answer = await health(running.url, 'web', index === 0 ? '' : `?index=${index}`);
    const check = serviceCheck(answer.entries[0]);
    if (check !== undefined && check.Output !== '') return check;
    index = answer.index;
  }
  throw new Error('the check never ran');
}

describe('HTTP checks and redirects', () => {
  let running: Running;
  let target: Redirector;
  let base: string;

  beforeEach(async () => {
    running = await startServer(new ManualClock());
    target = new Redirector();
    base = await target.listen();
  });
  afterEach(async () => {
    await closeAll();
    await target.close();
  });

  const register = (check: Record<string, unknown>): Promise<unknown> =>
    running.consul.agent.service.register({ name: 'web', id: 'web-1', check: check as never });

  it('follows redirects to the final answer, as Consul does', async () => {
    await register({ http: `${base}/hop/3`, interval: '10s' });
    const check = await firstResult(running);
    expect(check.Status).toBe('passing');
    expect(check.Output).toBe(`HTTP GET ${base}/hop/3: 200 OK Output: UP`);
    expect(target.seen.map((s) => s.url)).toEqual(['/hop/3', '/hop/2', '/hop/1', '/hop/0']);
  });

  it('judges the redirect itself with DisableRedirects', async () => {
    await register({ http: `${base}/hop/3`, interval: '10s', disableredirects: true });
    const check = await firstResult(running);
    expect(check.Status).toBe('critical');
    expect(check.Output).toBe(`HTTP GET ${base}/hop/3: 302 Found Output: moved`);
    expect(target.seen).toHaveLength(1);
    const checks = (await running.consul.agent.checks()) as unknown as Record<string, { Definition: object }>;
    expect(checks['service:web-1']?.Definition).toMatchObject({ DisableRedirects: true });
  });

  it("stops at the tenth redirect, as Go's client does", async () => {
    await register({ http: `${base}/hop/9`, interval: '10s' });
    expect((await firstResult(running)).Status).toBe('passing');
    await running.consul.agent.service.deregister('web-1');

    target.seen.length = 0;
    await register({ http: `${base}/hop/10`, interval: '10s' });
    const check = await firstResult(running);
    expect(check.Status).toBe('critical');
    expect(check.Output).toBe(`Get "${base}/hop/0": stopped after 10 redirects`);
    expect(target.seen).toHaveLength(10);
  });

  it('goes on as GET without the body after 302, and keeps both after 307', async () => {
    await register({ http: `${base}/hop/1`, interval: '10s', method: 'POST', body: 'ping' });
    await firstResult(running);
    expect(target.seen.map(({ method, body }) => [method, body])).toEqual([
      ['POST', 'ping'],
      ['GET', ''],
    ]);
    await running.consul.agent.service.deregister('web-1');

    target.status = 307;
    target.seen.length = 0;
    await register({ http: `${base}/hop/1`, interval: '10s', method: 'POST', body: 'ping' });
    expect((await firstResult(running)).Status).toBe('passing');
    expect(target.seen.map(({ method, body }) => [method, body])).toEqual([
      ['POST', 'ping'],
      ['POST', 'ping'],
    ]);
  });

  it('sends the Authorization header on to the same host only', async () => {
    const elsewhere = new Redirector();
    try {
      target.other = `${await elsewhere.listen('127.0.0.2')}/hop/0`;
      await register({ http: `${base}/away`, interval: '10s', header: { Authorization: ['Bearer s3cr3t'] } });
      expect((await firstResult(running)).Status).toBe('passing');
      expect(target.seen.map((s) => s.authorization)).toEqual(['Bearer s3cr3t']);
      expect(elsewhere.seen.map((s) => [s.url, s.authorization])).toEqual([['/hop/0', undefined]]);
      await running.consul.agent.service.deregister('web-1');

      target.seen.length = 0;
      await register({ http: `${base}/hop/1`, interval: '10s', header: { Authorization: ['Bearer s3cr3t'] } });
      await firstResult(running);
      expect(target.seen.map((s) => s.authorization)).toEqual(['Bearer s3cr3t', 'Bearer s3cr3t']);
    } finally {
      await elsewhere.close();
    }
  });
});
