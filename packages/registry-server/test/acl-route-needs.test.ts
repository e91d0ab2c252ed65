import { afterEach, describe, expect, it } from '@jest/globals';
import Fastify, { type FastifyInstance } from 'fastify';
import { AclStore, RegistryServer } from '@trellis/registry-server';
// The enforcement hook and route() are internal: a route that forgets to declare its needs
// cannot be made through the public API, so this test builds one on a Fastify app of its own.
import { registerAclEnforcement } from '../src/acl/acl-enforcement.js';
import { serviceNeed } from '../src/acl/route-acl.js';
import { route } from '../src/http/consul-http.js';

const root = 'root-secret';
const apps: FastifyInstance[] = [];
const servers: RegistryServer[] = [];

afterEach(async () => {
  await Promise.all([...apps.splice(0).map((app) => app.close()), ...servers.splice(0).map((s) => s.close())]);
});

async function call(url: string, method: string, token: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method, headers: { 'X-Consul-Token': token } });
  return { status: res.status, text: await res.text() };
}

describe('ACL needs declared next to each route', () => {
  it('closes a /v1 route that declares nothing to all but operators, and runs no refused handler', async () => {
    const acl = new AclStore({ initialManagementToken: root, defaultPolicy: 'deny' });
    const reader = acl.saveToken({
      description: 'reader',
      policies: [{ id: acl.savePolicy({ name: 'op-read', rules: 'operator = "read"' }).id }],
    });
    const nobody = acl.saveToken({ description: 'nobody', policies: [] });
    const app = Fastify();
    apps.push(app);
    registerAclEnforcement(app, acl);
    let ran = 0;
    app.get('/v1/undeclared', async () => ++ran);
    app.put('/v1/undeclared', async () => ++ran);
    app.get('/elsewhere', async () => 'open');
    const base = await app.listen({ port: 0, host: '127.0.0.1' });

    const refused = await call(`${base}/v1/undeclared`, 'GET', nobody.secretId);
    expect(refused.status).toBe(403);
    expect(refused.text).toContain("lacks permission 'operator:read'");
    expect(await call(`${base}/v1/undeclared`, 'PUT', reader.secretId)).toMatchObject({ status: 403 });
    expect(ran).toBe(0);
    expect(await call(`${base}/v1/undeclared`, 'GET', reader.secretId)).toMatchObject({ status: 200, text: '1' });
    expect(await call(`${base}/v1/undeclared`, 'PUT', root)).toMatchObject({ status: 200, text: '2' });
    // Outside /v1 (the dashboard's paths) a route is open to every known token.
    expect(await call(`${base}/elsewhere`, 'GET', nobody.secretId)).toMatchObject({ status: 200, text: 'open' });
  });

  it("gives a declared route's HEAD the same need as its GET, and its 405 whatever the token", async () => {
    const acl = new AclStore({ initialManagementToken: root, defaultPolicy: 'deny' });
    const nobody = acl.saveToken({ description: 'nobody', policies: [] });
    const app = Fastify();
    apps.push(app);
    registerAclEnforcement(app, acl);
    route(app, 'GET', '/v1/thing/:name', { needs: () => [serviceNeed('mail', 'read')] }, async (_r, reply) =>
      reply.send('thing'),
    );
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    expect(await call(`${base}/v1/thing/a`, 'HEAD', nobody.secretId)).toMatchObject({ status: 403 });
    expect(await call(`${base}/v1/thing/a`, 'HEAD', root)).toMatchObject({ status: 200 });
    expect(await call(`${base}/v1/thing/a`, 'DELETE', 'no-such-secret')).toMatchObject({ status: 405 });
  });

  it('decodes a registration body once and still answers a bad one 400 with ACLs on', async () => {
    const server = new RegistryServer({ logLevel: 'silent', acl: { enabled: true, initialManagementToken: root } });
    servers.push(server);
    const { url } = await server.listen({ port: 0, host: '127.0.0.1' });
    const res = await fetch(`${url}/v1/agent/service/register`, {
      method: 'PUT',
      headers: { 'X-Consul-Token': root },
      body: '{"Name": 7}',
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('Name');
  });
});
