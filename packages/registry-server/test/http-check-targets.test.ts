import { afterEach, describe, expect, it } from '@jest/globals';
import { RegistryServer } from '@trellis/registry-server';
import { tokenWithRules } from './helpers.js';

const root = 'root-secret';
const servers: RegistryServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function start(): Promise<string> {
  const server = new RegistryServer({ logLevel: 'silent', acl: { enabled: true, initialManagementToken: root } });
  servers.push(server);
  return (await server.listen({ port: 0, host: '127.0.0.1' })).url;
}

async function call(url: string, token: string, body: unknown): Promise<number> {
  const res = await fetch(url, { method: 'PUT', headers: { 'X-Consul-Token': token }, body: JSON.stringify(body) });
  await res.arrayBuffer();
  return res.status;
}

const tokenWith = (url: string, rules: string): Promise<string> => tokenWithRules(url, root, rules);

// An HTTP check makes the server request any URL it is given (it is how Consul's checks work):
// with ACLs on, only a token that may write the service (or the node) can make it do so.
describe('HTTP checks with ACLs on', () => {
  const target = { HTTP: 'http://127.0.0.1:9/any-url', Interval: '10s' };

  it('need service:write on the service to point the server at a URL', async () => {
    const url = await start();
    const reader = await tokenWith(url, 'service "web" { policy = "read" }');
    const writer = await tokenWith(url, 'service "web" { policy = "write" }');
    expect(await call(`${url}/v1/agent/service/register`, reader, { Name: 'web', Check: target })).toBe(403);
    expect(await call(`${url}/v1/agent/service/register`, writer, { Name: 'web', Check: target })).toBe(200);
    const check = { Name: 'meta', ServiceID: 'web', ...target };
    expect(await call(`${url}/v1/agent/check/register`, reader, check)).toBe(403);
    expect(await call(`${url}/v1/agent/check/register`, writer, check)).toBe(200);
  });

  it('need node:write for a check of the node', async () => {
    const url = await start();
    const writer = await tokenWith(url, 'service "web" { policy = "write" }');
    const nodeWriter = await tokenWith(url, 'node_prefix "" { policy = "write" }');
    expect(await call(`${url}/v1/agent/check/register`, writer, { Name: 'meta', ...target })).toBe(403);
    expect(await call(`${url}/v1/agent/check/register`, nodeWriter, { Name: 'meta', ...target })).toBe(200);
  });
});
