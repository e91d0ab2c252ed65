import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import Consul from 'consul';
import { ManualClock } from '@trellis/core';
import { RegistryServer } from '@trellis/registry-server';
import { closeAll, get, health, put, startServer, testNodeName, type Running } from './helpers.js';

const servers: RegistryServer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
  await closeAll();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

interface Check {
  CheckID: string;
  Name: string;
  Status: string;
  Notes: string;
  Output: string;
  ServiceID: string;
  Type: string;
}

// Two instances of users, both passing.
async function twoUsers(running: Running): Promise<void> {
  for (const id of ['users-1', 'users-2']) {
    await running.consul.agent.service.register({
      name: 'users',
      id,
      check: { ttl: '30s', status: 'passing' } as never,
    });
  }
}

async function passingIds(running: Running): Promise<string[]> {
  return (await health(running.url, 'users', '?passing')).entries.map((e) => e.Service.ID);
}

// Waits (on the server's own count, never on time) until `count` blocking queries are held.
async function held(running: Running, count: number): Promise<void> {
  for (let i = 0; i < 10_000 && running.server.heldQueries < count; i++) await new Promise((r) => setImmediate(r));
  expect(running.server.heldQueries).toBe(count);
}

describe('service maintenance', () => {
  it('adds a critical _service_maintenance check with the reason in Notes, so the instance is not passing', async () => {
    const running = await startServer(new ManualClock());
    await twoUsers(running);
    expect(await passingIds(running)).toEqual(['users-1', 'users-2']);

    await running.consul.agent.service.maintenance({ id: 'users-1', enable: true, reason: 'draining for deploy' });
    expect(await passingIds(running)).toEqual(['users-2']);
    const entry = (await health(running.url, 'users')).entries.find((e) => e.Service.ID === 'users-1');
    expect(entry?.Checks.find((c) => c.CheckID === '_service_maintenance:users-1')).toMatchObject({
      Name: 'Service Maintenance Mode',
      Status: 'critical',
      Notes: 'draining for deploy',
      Output: '',
      ServiceID: 'users-1',
      Type: 'maintenance',
    });
    const checks = (await running.consul.agent.checks()) as unknown as Record<string, Check>;
    expect(checks['_service_maintenance:users-1']).toMatchObject({ Status: 'critical', Type: 'maintenance' });

    await running.consul.agent.service.maintenance({ id: 'users-1', enable: false });
    expect(await passingIds(running)).toEqual(['users-1', 'users-2']);
    expect(Object.keys((await running.consul.agent.checks()) as object)).not.toContain('_service_maintenance:users-1');
  });

  it('wakes the watchers of the service on enable and on disable', async () => {
    const running = await startServer(new ManualClock());
    await twoUsers(running);
    let { index } = await health(running.url, 'users', '?passing');

    let pending = health(running.url, 'users', `?passing&index=${index}`);
    await held(running, 1);
    await put(`${running.url}/v1/agent/service/maintenance/users-2?enable=true`);
    let answer = await pending;
    expect(answer.entries.map((e) => e.Service.ID)).toEqual(['users-1']);
    expect(answer.index).toBeGreaterThan(index);
    index = answer.index;

    pending = health(running.url, 'users', `?passing&index=${index}`);
    await held(running, 1);
    await put(`${running.url}/v1/agent/service/maintenance/users-2?enable=false`);
    answer = await pending;
    expect(answer.entries.map((e) => e.Service.ID)).toEqual(['users-1', 'users-2']);
  });

  it("uses Consul's default note without a reason, and keeps the first reason when enabled twice", async () => {
    const running = await startServer(new ManualClock());
    await twoUsers(running);
    await put(`${running.url}/v1/agent/service/maintenance/users-1?enable=1`);
    await put(`${running.url}/v1/agent/service/maintenance/users-1?enable=true&reason=later`);
    const checks = (await running.consul.agent.checks()) as unknown as Record<string, Check>;
    expect(checks['_service_maintenance:users-1']?.Notes).toBe(
      'Maintenance mode is enabled for this service, but no reason was provided. This is a default message.',
    );
  });

  it('stays through a re-registration with replace-existing-checks, and goes with the service', async () => {
    const running = await startServer(new ManualClock());
    await twoUsers(running);
    await running.consul.agent.service.maintenance({ id: 'users-1', enable: true, reason: 'disk' });
    const reply = await put(
      `${running.url}/v1/agent/service/register?replace-existing-checks`,
      JSON.stringify({ Name: 'users', ID: 'users-1', Check: { TTL: '30s', Status: 'passing' } }),
    );
    expect(reply.status).toBe(200);
    expect(await passingIds(running)).toEqual(['users-2']);

    await running.consul.agent.service.deregister('users-1');
    expect(Object.keys((await running.consul.agent.checks()) as object)).toEqual(['service:users-2']);
  });

  it("answers Consul's 400s and 404s, changing nothing", async () => {
    const running = await startServer(new ManualClock());
    await twoUsers(running);
    const base = `${running.url}/v1/agent/service/maintenance`;
    expect(await put(`${base}/users-1`)).toMatchObject({ status: 400, text: 'Missing value for enable' });
    expect(await put(`${base}/users-1?enable=yes`)).toMatchObject({
      status: 400,
      text: 'Invalid value for enable: "yes"',
    });
    expect(await put(`${base}/nope?enable=true`)).toMatchObject({
      status: 404,
      text: 'No service registered with ID "nope"',
    });
    expect((await get(`${base}/users-1?enable=true`)).status).toBe(405);
    expect(await passingIds(running)).toEqual(['users-1', 'users-2']);
  });
});

describe('node maintenance', () => {
  it('adds a critical _node_maintenance check, so no instance on the node is passing', async () => {
    const running = await startServer(new ManualClock());
    await twoUsers(running);
    await running.consul.agent.maintenance({ enable: true, reason: 'kernel upgrade' });
    expect(await passingIds(running)).toEqual([]);
    const nodeChecks = (await running.consul.health.node(testNodeName)) as unknown as Check[];
    expect(nodeChecks.find((c) => c.CheckID === '_node_maintenance')).toMatchObject({
      Name: 'Node Maintenance Mode',
      Status: 'critical',
      Notes: 'kernel upgrade',
      ServiceID: '',
      Type: 'maintenance',
    });
    const [entry] = (await health(running.url, 'users')).entries;
    expect(entry?.Checks.map((c) => c.CheckID)).toEqual(['_node_maintenance', 'serfHealth', 'service:users-1']);

    await running.consul.agent.maintenance({ enable: false });
    expect(await passingIds(running)).toEqual(['users-1', 'users-2']);
  });

  it('wakes every watcher of the node', async () => {
    const running = await startServer(new ManualClock());
    await twoUsers(running);
    const { index } = await health(running.url, 'users', '?passing');
    const pending = health(running.url, 'users', `?passing&index=${index}`);
    await held(running, 1);
    await put(`${running.url}/v1/agent/maintenance?enable=true`);
    expect((await pending).entries).toEqual([]);
    const checks = (await running.consul.agent.checks()) as unknown as Record<string, Check>;
    expect(checks['_node_maintenance']?.Notes).toBe(
      'Maintenance mode is enabled for this node, but no reason was provided. This is a default message.',
    );
  });

  it('survives a restart with a data directory', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-maintenance-'));
    dirs.push(dir);
    const first = new RegistryServer({ logLevel: 'silent', dataDir: dir, nodeName: testNodeName });
    const { port } = await first.listen({ port: 0 });
    await new Consul({ host: '127.0.0.1', port }).agent.maintenance({ enable: true, reason: 'rack move' });
    await first.close();

    const second = new RegistryServer({ logLevel: 'silent', dataDir: dir, nodeName: testNodeName });
    servers.push(second);
    const again = await second.listen({ port: 0 });
    const checks = (await new Consul({ host: '127.0.0.1', port: again.port }).agent.checks()) as unknown as Record<
      string,
      Check
    >;
    expect(checks['_node_maintenance']).toMatchObject({ Status: 'critical', Notes: 'rack move', Type: 'maintenance' });
  });
});

describe('maintenance with ACLs', () => {
  const root = 'root-secret';
  let policies = 0;

  async function tokenWith(url: string, rules: string): Promise<string> {
    const policy = (await (
      await fetch(`${url}/v1/acl/policy`, {
        method: 'PUT',
        headers: { 'X-Consul-Token': root },
        body: JSON.stringify({ Name: `policy-${++policies}`, Rules: rules }),
      })
    ).json()) as { ID: string };
    const token = (await (
      await fetch(`${url}/v1/acl/token`, {
        method: 'PUT',
        headers: { 'X-Consul-Token': root },
        body: JSON.stringify({ Policies: [{ ID: policy.ID }] }),
      })
    ).json()) as { SecretID: string };
    return token.SecretID;
  }

  it('needs service:write for a service, node:write for the node', async () => {
    const server = new RegistryServer({
      logLevel: 'silent',
      nodeName: testNodeName,
      acl: { enabled: true, initialManagementToken: root },
    });
    servers.push(server);
    const { url, port } = await server.listen({ port: 0 });
    const consul = (token: string): Consul => new Consul({ host: '127.0.0.1', port, defaults: { token } });
    await consul(root).agent.service.register({ name: 'users', id: 'users-1' });
    await consul(root).agent.service.register({ name: 'mail', id: 'mail-1' });
    const users = consul(await tokenWith(url, 'service "users" { policy = "write" }'));

    await users.agent.service.maintenance({ id: 'users-1', enable: true });
    const forbidden = { response: { statusCode: 403 } };
    await expect(users.agent.service.maintenance({ id: 'mail-1', enable: true })).rejects.toMatchObject(forbidden);
    await expect(users.agent.maintenance({ enable: true })).rejects.toMatchObject(forbidden);
    const operator = consul(await tokenWith(url, `node "${testNodeName}" { policy = "write" }`));
    await operator.agent.maintenance({ enable: true });

    const checks = Object.keys(await consul(root).agent.checks());
    expect(checks.sort()).toEqual(['_node_maintenance', '_service_maintenance:users-1']);
  });
});
