import { afterEach, describe, expect, it } from '@jest/globals';
import { exited, killCliChildren, listeningUrl, spawnCli, stderrOf } from './cli-process.js';

function start(args: string[], token?: string): ReturnType<typeof spawnCli> {
  const env = { ...process.env };
  delete env['TRELLIS_ACL_INITIAL_TOKEN'];
  if (token !== undefined) env['TRELLIS_ACL_INITIAL_TOKEN'] = token;
  return spawnCli(['--port', '0', '--log-level', 'silent', '--dev', ...args], env);
}

async function status(url: string, token?: string): Promise<number> {
  const res = await fetch(`${url}/v1/agent/self`, token === undefined ? {} : { headers: { 'X-Consul-Token': token } });
  await res.arrayBuffer();
  return res.status;
}

afterEach(killCliChildren);

describe('the trellis-registry CLI with --acl', () => {
  it('exits 2 naming both ways to give the initial token when there is none', async () => {
    const child = start(['--acl']);
    const stderr = stderrOf(child);
    expect(await exited(child)).toBe(2);
    expect(await stderr).toContain('--acl-initial-token');
    expect(await stderr).toContain('TRELLIS_ACL_INITIAL_TOKEN');
  });

  it('takes the initial management token from the environment', async () => {
    const url = await listeningUrl(start(['--acl'], 'env-secret'));
    expect(await status(url)).toBe(403);
    expect(await status(url, 'env-secret')).toBe(200);
  });

  it('lets --acl-initial-token win over the environment', async () => {
    const url = await listeningUrl(start(['--acl', '--acl-initial-token', 'flag-secret'], 'env-secret'));
    expect(await status(url, 'flag-secret')).toBe(200);
    expect(await status(url, 'env-secret')).toBe(403);
  });

  it('keeps ACLs off without --acl, even with the token in the environment', async () => {
    const url = await listeningUrl(start([], 'env-secret'));
    expect(await status(url)).toBe(200);
  });
});
