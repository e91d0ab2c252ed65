import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from '@jest/globals';
import { ConfigError } from '@trellis/core';
import { RegistryServer, type RegistryServerOptions } from '@trellis/registry-server';
import { exited, firstLine, killCliChildren, spawnCli, stderrOf } from './cli-process.js';

const started: RegistryServer[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(started.splice(0).map((server) => server.close()));
  await killCliChildren();
});

async function start(options: RegistryServerOptions = {}): Promise<{ server: RegistryServer; port: number }> {
  const server = new RegistryServer({ logLevel: 'silent', ...options });
  started.push(server);
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, port };
}

/** A raw connection, and everything the server writes on it until it closes. */
function connect(port: number): { socket: net.Socket; answer: Promise<{ text: string; closedAfterMs: number }> } {
  const socket = net.connect(port, '127.0.0.1');
  sockets.push(socket);
  const opened = performance.now();
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.on('error', () => undefined);
  const answer = new Promise<{ text: string; closedAfterMs: number }>((resolve) =>
    socket.once('close', () => resolve({ text, closedAfterMs: performance.now() - opened })),
  );
  return { socket, answer };
}

/** Writes `text` a byte every `everyMs`, until the socket closes; the slow client of the issue. */
function trickle(socket: net.Socket, text: string, everyMs: number): void {
  let at = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || at >= text.length) return clearInterval(timer);
    socket.write(text[at++] ?? '');
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
}

/** One keep-alive request on `socket`, resolved with its status once its answer is in. */
function statusOn(socket: net.Socket, path: string): Promise<number> {
  return new Promise((resolve) => {
    let text = '';
    const onData = (chunk: Buffer | string): void => {
      text += chunk.toString();
      const status = /^HTTP\/1\.1 (\d{3})[^]*?\r\n\r\n/.exec(text);
      if (status === null) return;
      socket.off('data', onData);
      resolve(Number(status[1]));
    };
    socket.on('data', onData);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  });
}

function getFrom(localAddress: string, port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, localAddress, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

describe('slow clients', () => {
  it('have a body trickled a byte at a time cut with 408 once the request timeout is up, and nothing stored', async () => {
    const { port } = await start({ requestTimeoutMs: 400, headersTimeoutMs: 200 });
    const { socket, answer } = connect(port);
    socket.write('PUT /v1/kv/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n');
    trickle(socket, 'x'.repeat(1000), 50);
    const { text, closedAfterMs } = await answer;
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    // The timeout, plus at most one checking interval (a quarter of the headers timeout), plus slack.
    expect(closedAfterMs).toBeGreaterThanOrEqual(350);
    expect(closedAfterMs).toBeLessThan(2_000);
    expect(await getFrom('127.0.0.1', port, '/v1/kv/slow')).toBe(404);
  });

  it('have headers trickled a byte at a time cut once the headers timeout is up', async () => {
    const { port } = await start({ requestTimeoutMs: 2_000, headersTimeoutMs: 300 });
    const { socket, answer } = connect(port);
    trickle(socket, `GET /v1/status/leader HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${'y'.repeat(200)}\r\n\r\n`, 20);
    const { text, closedAfterMs } = await answer;
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(closedAfterMs).toBeLessThan(1_500);
  });

  it('do not cut a blocking query that holds its answer past the request timeout', async () => {
    const { port } = await start({ requestTimeoutMs: 200, headersTimeoutMs: 100 });
    const index = await new Promise<string>((resolve) =>
      http.get(`http://127.0.0.1:${port}/v1/kv/?recurse`, (res) => {
        res.resume();
        resolve(String(res.headers['x-consul-index']));
      }),
    );
    const heldFor = performance.now();
    const status = await getFrom('127.0.0.1', port, `/v1/kv/?recurse&index=${index}&wait=800ms`);
    // 404: nothing under the prefix, answered when the wait ran out, not cut by a 408.
    expect(status).toBe(404);
    expect(performance.now() - heldFor).toBeGreaterThanOrEqual(750);
  });

  it('are refused when the timeouts do not fit together, naming the option', () => {
    expect(() => new RegistryServer({ requestTimeoutMs: 100, headersTimeoutMs: 200 })).toThrow(ConfigError);
    expect(() => new RegistryServer({ requestTimeoutMs: 100, headersTimeoutMs: 200 })).toThrow(/headersTimeoutMs/);
    expect(() => new RegistryServer({ httpMaxConnsPerClient: -1 })).toThrow(/httpMaxConnsPerClient/);
  });
});

describe('connections per client address', () => {
  it('are capped at 200 by default: the 201st is answered 429 and closed, a normal GET from elsewhere is answered', async () => {
    const { server, port } = await start();
    const held = Array.from({ length: 200 }, () => connect(port));
    // Each answered once, so the server has counted each one.
    expect(new Set(await Promise.all(held.map(({ socket }) => statusOn(socket, '/v1/status/leader'))))).toEqual(
      new Set([200]),
    );
    expect(server.stats()).toMatchObject({ connections: 200, connectedClients: 1 });

    const extra = connect(port);
    extra.socket.write('GET /v1/status/leader HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const refused = await extra.answer;
    expect(refused.text).toMatch(/^HTTP\/1\.1 429 Too Many Requests\r\n/);
    expect(refused.text).toContain('Your IP is issuing too many concurrent connections, please rate limit your calls');

    // Another client address (all of 127/8 is loopback) is still served.
    expect(await getFrom('127.0.0.2', port, '/v1/status/leader')).toBe(200);

    // One of the 200 leaves; a new connection from the first address is let in again.
    const leaving = held[0];
    leaving?.socket.end();
    await leaving?.answer;
    const again = connect(port);
    expect(await statusOn(again.socket, '/v1/status/leader')).toBe(200);
  });

  it('follows the option, and 0 turns the cap off', async () => {
    const { port } = await start({ httpMaxConnsPerClient: 2 });
    const two = [connect(port), connect(port)];
    for (const { socket } of two) expect(await statusOn(socket, '/v1/status/leader')).toBe(200);
    expect((await connect(port).answer).text).toMatch(/^HTTP\/1\.1 429 /);

    const open = await start({ httpMaxConnsPerClient: 0 });
    const many = Array.from({ length: 300 }, () => connect(open.port));
    const statuses = await Promise.all(many.map(({ socket }) => statusOn(socket, '/v1/status/leader')));
    expect(statuses.every((status) => status === 200)).toBe(true);
  });

  it('is set with --http-max-conns-per-client, and a bad value exits 2 naming the flag', async () => {
    const child = spawnCli(['--port', '0', '--log-level', 'silent', '--dev', '--http-max-conns-per-client', '1']);
    const url = new URL((await firstLine(child)).split(' ').pop() ?? '');
    const first = connect(Number(url.port));
    expect(await statusOn(first.socket, '/v1/status/leader')).toBe(200);
    expect((await connect(Number(url.port)).answer).text).toMatch(/^HTTP\/1\.1 429 /);

    for (const value of ['many', '-3', '1.5']) {
      const bad = spawnCli(['--port', '0', '--http-max-conns-per-client', value]);
      const stderr = stderrOf(bad);
      expect(await exited(bad)).toBe(2);
      expect(await stderr).toContain('--http-max-conns-per-client');
    }
  });
});
