import { afterEach, describe, expect, it } from '@jest/globals';
import Consul from 'consul';
import { closeAll, lines, startRegistry, trellis } from './helpers.js';

afterEach(closeAll);

async function registered(url: string): Promise<Consul> {
  const { port } = new URL(url);
  const consul = new Consul({ host: '127.0.0.1', port: Number(port) });
  const register = (id: string, service: string, port: number, meta: Record<string, string>, passing: boolean) =>
    consul.agent.service.register({
      id,
      name: service,
      address: '127.0.0.1',
      port,
      tags: ['http', 'v1'],
      meta,
      check: { name: 'heartbeat', ttl: '60s', status: passing ? 'passing' : 'critical' } as never,
    });
  await register('users-1', 'users', 4001, { version: '1.2.0', zone: 'a' }, true);
  await register('users-2', 'users', 4002, { version: '1.3.0', zone: 'b' }, false);
  await register('forum-1', 'forum', 4101, {}, true);
  return consul;
}

describe('trellis services', () => {
  it('lists each service with its tags and its healthy and total instances, aligned', async () => {
    const { url } = await startRegistry();
    const consul = await registered(url);
    const result = await trellis(['services', '--registry', url]);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const table = lines(result.stdout);
    expect(table[0]).toMatch(/^SERVICE +HEALTHY +TOTAL +TAGS$/);
    expect(table).toContainEqual(expect.stringMatching(/^users +1 +2 +http,v1$/));
    expect(table).toContainEqual(expect.stringMatching(/^forum +1 +1 +http,v1$/));
    // Columns line up: every row's second column starts where the header's does.
    const column = table[0]?.indexOf('HEALTHY');
    for (const row of table.slice(1)) expect(row.slice(0, column).endsWith(' ')).toBe(true);
    consul.destroy();
  });

  it('prints JSON with --json', async () => {
    const { url } = await startRegistry();
    const consul = await registered(url);
    const result = await trellis(['services', '--json'], { env: { CONSUL_HTTP_ADDR: url } });
    expect(result.code).toBe(0);
    const summaries = JSON.parse(result.stdout) as Array<{ service: string }>;
    expect(summaries).toContainEqual({ service: 'users', tags: ['http', 'v1'], healthy: 1, total: 2 });
    consul.destroy();
  });
});

describe('trellis instances', () => {
  it("lists a service's instances with address, health, version and zone", async () => {
    const { url } = await startRegistry();
    const consul = await registered(url);
    const result = await trellis(['instances', 'users', '--registry', url]);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(lines(result.stdout)).toEqual([
      expect.stringMatching(/^ID +ADDRESS +HEALTH +VERSION +ZONE/),
      expect.stringMatching(/^users-1 +127\.0\.0\.1:4001 +passing +1\.2\.0 +a/),
      expect.stringMatching(/^users-2 +127\.0\.0\.1:4002 +failing +1\.3\.0 +b/),
    ]);
    consul.destroy();
  });

  it('fails with exit code 1 and one line for a service with no instance', async () => {
    const { url } = await startRegistry();
    const result = await trellis(['instances', 'billing', '--registry', url]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(lines(result.stderr)).toEqual([
      `trellis: service "billing" has no instance registered at ${url}; \`trellis services\` lists the services`,
    ]);
  });
});
