import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type Socket } from 'node:net';
import { closeAll, lines, startRegistry, trellis, trellisProcess } from './helpers.js';

afterEach(closeAll);

/** An address nothing listens on: a port taken and freed again. */
async function deadAddress(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

describe('bad usage: exit code 2 and one line', () => {
  it.each([
    [['services', '--bogus'], /^trellis: unknown option '--bogus'/],
    [['servces'], /^trellis: unknown command 'servces'; did you mean services\?/],
    [[], /^trellis: trellis needs a command: services, instances/],
    [['instances'], /^trellis: missing required argument 'service'/],
    [['services', '--timeout', '0'], /^trellis: option '--timeout <ms>' argument '0' is invalid\. must be a positive/],
    [['services', '--registry', 'ftp://x:21'], /^trellis: --registry "ftp:\/\/x:21" must be an http/],
  ])('%j', async (args, line) => {
    const result = await trellis(args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(lines(result.stderr)).toEqual([expect.stringMatching(line)]);
  });

  it('prints the help on standard output with exit code 0', async () => {
    const result = await trellis(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: trellis \[options\] \[command\]/);
    expect(result.stderr).toBe('');
  });
});

describe('the registry address', () => {
  it('is taken from CONSUL_HTTP_ADDR as host:port without a scheme, like Consul', async () => {
    const { url } = await startRegistry();
    const result = await trellis(['services'], { env: { CONSUL_HTTP_ADDR: url.replace('http://', '') } });
    expect(result).toMatchObject({ code: 0, stderr: '' });
  });

  it('--registry wins over CONSUL_HTTP_ADDR', async () => {
    const { url } = await startRegistry();
    const result = await trellis(['services', '--registry', url], { env: { CONSUL_HTTP_ADDR: await deadAddress() } });
    expect(result).toMatchObject({ code: 0, stderr: '' });
  });

  it('unreachable: exit code 1 and one line naming the address', async () => {
    const dead = await deadAddress();
    const result = await trellis(['services', '--registry', dead]);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^trellis: cannot reach the registry at ${dead} \\(.*ECONNREFUSED.*\\); start it, or point --registry`,
        ),
      ),
    ]);
  });
});

describe('--timeout', () => {
  it('bounds every request: a registry that never answers is exit code 1 after the timeout', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => void sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    try {
      for (const args of [['services'], ['kv', 'get', 'a']]) {
        const started = Date.now();
        const result = await trellis([...args, '--registry', `127.0.0.1:${port}`, '--timeout', '300']);
        expect(result.code).toBe(1);
        expect(lines(result.stderr)).toEqual([
          expect.stringMatching(new RegExp(`^trellis: cannot reach the registry at http://127\\.0\\.0\\.1:${port} `)),
        ]);
        expect(Date.now() - started).toBeLessThan(5_000);
      }
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('the built bin, as a process', () => {
  it('exits 1 with one line on stderr naming the address when the registry is down', async () => {
    const dead = await deadAddress();
    const result = await trellisProcess(['instances', 'users'], { env: { CONSUL_HTTP_ADDR: dead } });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(lines(result.stderr)).toEqual([
      expect.stringMatching(new RegExp(`^trellis: cannot reach the registry at ${dead} `)),
    ]);
  });

  it('exits 2 with one line on an unknown flag, and 0 with the services of a running registry', async () => {
    const unknown = await trellisProcess(['services', '--colour']);
    expect(unknown.code).toBe(2);
    expect(lines(unknown.stderr)).toEqual([expect.stringMatching(/^trellis: unknown option '--colour'/)]);

    const { url } = await startRegistry();
    const ok = await trellisProcess(['services', '--json', '--registry', url]);
    expect(ok).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(ok.stdout)).toEqual(expect.any(Array));
  });
});
