import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from '@jest/globals';
import Consul from 'consul';
import { ManualClock } from '@trellis/core';
import { RegistryServer } from '@trellis/registry-server';
import { closeAll, health, put, serviceCheck, startServer, type HealthEntry } from './helpers.js';

const servers: RegistryServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
  await closeAll();
});

async function startWithScripts(clock: ManualClock): Promise<{ url: string; consul: Consul }> {
  const server = new RegistryServer({ logLevel: 'silent', clock, enableScriptChecks: true });
  servers.push(server);
  const { url, port } = await server.listen({ port: 0 });
  return { url, consul: new Consul({ host: '127.0.0.1', port }) };
}

// A check that runs Node with a program: no shell anywhere.
const node = (program: string): string[] => [process.execPath, '-e', program];

type Check = HealthEntry['Checks'][number];

// Follows the service's health with blocking queries until its check has a result.
async function result(url: string, predicate: (check: Check) => boolean = (c) => c.Output !== ''): Promise<Check> {
  let index = 0;
  for (let i = 0; i < 50; i++) {
    const answer = await health(url, 'job', index === 0 ? '' : `?index=${index}`);
    const check = serviceCheck(answer.entries[0]);
    if (check !== undefined && predicate(check)) return check;
    index = answer.index;
  }
  throw new Error('the script check never reached the state waited for');
}

const refused =
  "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true";

describe('script checks, off by default', () => {
  it("refuses a check with Args with Consul's message, registering nothing", async () => {
    const { url, consul } = await startServer(new ManualClock());
    const service = await put(
      `${url}/v1/agent/service/register`,
      JSON.stringify({ Name: 'job', Check: { Args: ['/bin/true'], Interval: '10s' } }),
    );
    expect([service.status, service.text]).toEqual([400, refused]);
    const check = await put(
      `${url}/v1/agent/check/register`,
      JSON.stringify({ Name: 'disk', Args: ['/bin/true'], Interval: '10s' }),
    );
    expect([check.status, check.text]).toEqual([400, refused]);
    expect(await consul.agent.services()).toEqual({});
    expect(await consul.agent.checks()).toEqual({});
  });
});

describe('script checks with enableScriptChecks', () => {
  it('runs Args without a shell: exit 0 passing, 1 warning, other critical, with the output', async () => {
    const clock = new ManualClock();
    const { url, consul } = await startWithScripts(clock);
    // A shell would expand $HOME and run the second command; Args are passed as they are.
    const register = (program: string): Promise<unknown> =>
      consul.agent.service.register({
        name: 'job',
        check: { args: [...node(program), '$HOME; echo pwned'], interval: '10s' } as never,
      });

    await register('console.log("ok", process.argv[1]); process.exit(0)');
    let check = await result(url);
    expect(check).toMatchObject({ Status: 'passing', Output: 'ok $HOME; echo pwned\n', Type: 'script' });

    await register('console.error("disk 91%"); process.exit(1)');
    check = await result(url, (c) => c.Status === 'warning');
    expect(check.Output).toBe('disk 91%\n');

    await register('process.stdout.write("down"); process.exit(2)');
    check = await result(url, (c) => c.Status === 'critical' && c.Output === 'down');

    const checks = (await consul.agent.checks()) as unknown as Record<string, Record<string, unknown>>;
    expect(checks['service:job']).toMatchObject({
      Type: 'script',
      Interval: '10s',
      Timeout: '30s',
      Definition: { ScriptArgs: [...node('process.stdout.write("down"); process.exit(2)'), '$HOME; echo pwned'] },
    });
    const self = (await consul.agent.self()) as { Stats: { agent: Record<string, string> } };
    expect(self.Stats.agent['check_monitors']).toBe('1');
  });

  it('runs again every Interval on the clock', async () => {
    const clock = new ManualClock();
    const { url, consul } = await startWithScripts(clock);
    const counter = `process.stdout.write(String(Date.now()))`;
    await consul.agent.service.register({ name: 'job', check: { args: node(counter), interval: '10s' } as never });
    const first = await result(url);
    clock.advance(10_000);
    const second = await result(url, (c) => c.Output !== first.Output);
    expect(second.Status).toBe('passing');
  });

  it('keeps the last 4 KiB of a long output, saying how much there was, as Consul does', async () => {
    const { url, consul } = await startWithScripts(new ManualClock());
    const program = 'process.stdout.write("a".repeat(5000) + "END")';
    await consul.agent.service.register({ name: 'job', check: { args: node(program), interval: '10s' } as never });
    const check = await result(url);
    expect(check.Output).toBe(`Captured 4096 of 5003 bytes\n...\n${'a'.repeat(4093)}END`);
  });

  it('kills the script and what it started at its Timeout, and is critical', async () => {
    const clock = new ManualClock();
    const { url, consul } = await startWithScripts(clock);
    // The script and a child it starts each hold a connection to this server; the kill closes both.
    const sockets: net.Socket[] = [];
    const closed: Promise<void>[] = [];
    let connected: () => void = () => undefined;
    const both = new Promise<void>((resolve) => (connected = resolve));
    const listener = net.createServer((socket) => {
      sockets.push(socket);
      closed.push(new Promise((resolve) => socket.on('close', () => resolve())));
      socket.on('error', () => undefined);
      if (sockets.length === 2) connected();
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    try {
      const port = (listener.address() as AddressInfo).port;
      const hold = `require("net").connect(${port}, "127.0.0.1"); setInterval(() => {}, 1000)`;
      const program = `require("child_process").spawn(process.execPath, ["-e", ${JSON.stringify(hold)}], { stdio: "ignore" }); process.stdout.write("started"); ${hold}`;
      await consul.agent.service.register({
        name: 'job',
        check: { args: node(program), interval: '10s', timeout: '5s' } as never,
      });
      await both;
      clock.advance(5_000);
      await Promise.all(closed);
      const check = await result(url);
      expect(check.Status).toBe('critical');
      expect(check.Output).toBe('Timed out (5s) running check\n\nstarted');
    } finally {
      listener.close();
    }
  });

  it('is critical with the reason when the command cannot be run', async () => {
    const { url, consul } = await startWithScripts(new ManualClock());
    await consul.agent.service.register({
      name: 'job',
      check: { args: ['/no/such/program'], interval: '10s' } as never,
    });
    const check = await result(url);
    expect(check.Status).toBe('critical');
    expect(check.Output).toContain('ENOENT');
  });

  it('refuses Args that are not a list of strings, naming the field', async () => {
    const { url } = await startWithScripts(new ManualClock());
    for (const [check, field] of [
      [{ Args: 'uptime', Interval: '10s' }, 'Check.Args'],
      [{ Args: [], Interval: '10s' }, 'Check.Args'],
      [{ Args: ['uptime'] }, 'Check.Interval'],
      [{ Args: ['uptime'], Interval: '10s', TTL: '10s' }, 'Check.Args'],
    ] as const) {
      const reply = await put(`${url}/v1/agent/service/register`, JSON.stringify({ Name: 'job', Check: check }));
      expect(reply.status).toBe(400);
      expect(reply.text).toContain(field);
    }
  });
});
