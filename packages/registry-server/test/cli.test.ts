import { afterEach, describe, expect, it } from '@jest/globals';
import Consul from 'consul';
import { exited, firstLine, killCliChildren, spawnCli, stderrOf } from './cli-process.js';

afterEach(killCliChildren);

describe('the trellis-registry CLI', () => {
  it('prints the URL with the real port, serves Consul clients, and exits 0 on SIGTERM', async () => {
    const child = spawnCli(['--port', '0', '--log-level', 'warn']);
    const line = await firstLine(child);
    const match = /^trellis-registry listening on (http:\/\/127\.0\.0\.1:(\d+))$/.exec(line);
    expect(match).not.toBeNull();
    const port = Number(match?.[2]);
    expect(port).toBeGreaterThan(0);

    const consul = new Consul({ host: '127.0.0.1', port });
    await consul.agent.service.register({
      name: 'users',
      port: 4000,
      check: { ttl: '10s', status: 'passing' } as never,
    });
    const entries = (await consul.health.service({ service: 'users', passing: true })) as {
      Service: { Port: number };
    }[];
    expect(entries.map((e) => e.Service.Port)).toEqual([4000]);

    const code = exited(child);
    child.kill('SIGTERM');
    expect(await code).toBe(0);
  });

  it('exits 0 on SIGINT too', async () => {
    const child = spawnCli(['--port', '0', '--log-level', 'silent']);
    await firstLine(child);
    const code = exited(child);
    child.kill('SIGINT');
    expect(await code).toBe(0);
  });

  it('exits 2 with a message naming the option for a bad option', async () => {
    for (const args of [['--port', 'http'], ['--port', '70000'], ['--log-level', 'loud'], ['--verbose']]) {
      const child = spawnCli(args);
      const stderr = stderrOf(child);
      expect(await exited(child)).toBe(2);
      expect(await stderr).toContain(args[0]);
    }
  });
});
