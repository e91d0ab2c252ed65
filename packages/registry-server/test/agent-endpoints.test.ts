import { afterEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '@trellis/core';
import { closeAll, get, health, put, serviceCheck, startServer } from './helpers.js';

afterEach(closeAll);

type AgentChecks = Record<string, Record<string, unknown>>;

describe('agent services', () => {
  it('lists every registered service by id with Consul fields, and {} when there are none', async () => {
    const { consul } = await startServer();
    expect(await consul.agent.services()).toEqual({});

    await consul.agent.service.register({ name: 'users', id: 'users-1', port: 4000, tags: ['v1'], meta: { a: 'b' } });
    await consul.agent.service.register({ name: 'mail', address: '10.0.0.9', port: 25 });
    expect(await consul.agent.services()).toEqual({
      mail: {
        ID: 'mail',
        Service: 'mail',
        Tags: [],
        Meta: {},
        Port: 25,
        Address: '10.0.0.9',
        Weights: { Passing: 1, Warning: 1 },
        EnableTagOverride: false,
        Datacenter: 'dc1',
      },
      'users-1': {
        ID: 'users-1',
        Service: 'users',
        Tags: ['v1'],
        Meta: { a: 'b' },
        Port: 4000,
        Address: '',
        Weights: { Passing: 1, Warning: 1 },
        EnableTagOverride: false,
        Datacenter: 'dc1',
      },
    });
  });

  it('answers one service by id with a ContentHash that changes with the service', async () => {
    const { url, consul } = await startServer();
    await consul.agent.service.register({ name: 'users', id: 'users-1', port: 4000 });
    const first = await get(`${url}/v1/agent/service/users-1`);
    expect(first.status).toBe(200);
    const body = JSON.parse(first.text) as Record<string, unknown>;
    expect(body).toMatchObject({ ID: 'users-1', Service: 'users', Port: 4000 });
    expect(body['ContentHash']).toMatch(/^[0-9a-f]{16}$/);
    expect(first.headers.get('x-consul-contenthash')).toBe(body['ContentHash']);

    await consul.agent.service.register({ name: 'users', id: 'users-1', port: 4001 });
    const second = JSON.parse((await get(`${url}/v1/agent/service/users-1`)).text) as Record<string, unknown>;
    expect(second['ContentHash']).not.toBe(body['ContentHash']);
  });

  it('holds /v1/agent/service/:id?hash= until the service changes', async () => {
    const clock = new ManualClock();
    const { url, server, consul } = await startServer(clock);
    await consul.agent.service.register({ name: 'users', id: 'users-1', port: 4000 });
    const hash = (JSON.parse((await get(`${url}/v1/agent/service/users-1`)).text) as { ContentHash: string })
      .ContentHash;
    const pending = get(`${url}/v1/agent/service/users-1?hash=${hash}`);
    for (let i = 0; i < 10_000 && server.heldQueries < 1; i++) await new Promise((r) => setImmediate(r));
    expect(server.heldQueries).toBe(1);
    await consul.agent.service.register({ name: 'users', id: 'users-1', port: 4001 });
    expect(JSON.parse((await pending).text)).toMatchObject({ Port: 4001 });
  });

  it('answers 404 for an unknown service id', async () => {
    const { url } = await startServer();
    const reply = await get(`${url}/v1/agent/service/nope`);
    expect([reply.status, reply.text]).toEqual([404, 'unknown service ID: nope']);
  });
});

describe('agent checks', () => {
  it('registers a TTL check of the node that starts critical, and lists it in agent/checks', async () => {
    const { consul } = await startServer(new ManualClock());
    await consul.agent.check.register({ name: 'disk', ttl: '30s', notes: 'free space' } as never);
    const checks = (await consul.agent.checks()) as unknown as AgentChecks;
    expect(Object.keys(checks)).toEqual(['disk']);
    expect(checks['disk']).toMatchObject({
      Node: 'trellis',
      CheckID: 'disk',
      Name: 'disk',
      Status: 'critical',
      Notes: 'free space',
      Output: '',
      ServiceID: '',
      ServiceName: '',
      ServiceTags: [],
      Type: 'ttl',
      Definition: { TTL: '30s' },
    });
    await consul.agent.check.pass({ id: 'disk', note: 'ok' });
    expect(((await consul.agent.checks()) as unknown as AgentChecks)['disk']).toMatchObject({
      Status: 'passing',
      Output: 'ok',
    });
  });

  it('registers a check for a service with an ID and an initial Status, seen in the service health', async () => {
    const { url, consul } = await startServer(new ManualClock());
    await consul.agent.service.register({ name: 'users', id: 'users-1' });
    await consul.agent.check.register({
      name: 'users alive',
      id: 'users-alive',
      serviceid: 'users-1',
      ttl: '10s',
      status: 'passing',
    } as never);
    const entry = (await health(url, 'users')).entries[0];
    expect(serviceCheck(entry, 'users-alive')).toMatchObject({ Status: 'passing', ServiceID: 'users-1' });
    expect(((await consul.agent.checks()) as unknown as AgentChecks)['users-alive']).toMatchObject({
      ServiceID: 'users-1',
      ServiceName: 'users',
    });
  });

  it('deregisters a check, leaving its service, and answers 404 for an unknown check', async () => {
    const { url, consul } = await startServer(new ManualClock());
    await consul.agent.service.register({ name: 'users', id: 'users-1', check: { ttl: '10s' } as never });
    await consul.agent.check.deregister('service:users-1');
    expect(await consul.agent.checks()).toEqual({});
    const entries = (await health(url, 'users')).entries;
    expect(entries.map((e) => e.Checks.map((c) => c.CheckID))).toEqual([['serfHealth']]);

    const reply = await put(`${url}/v1/agent/check/deregister/service:users-1`);
    expect([reply.status, reply.text]).toEqual([
      404,
      'Unknown check ID "service:users-1". Ensure that the check ID is passed, not the check name.',
    ]);
    await expect(consul.agent.check.deregister('nope')).rejects.toHaveProperty('statusCode', 404);
  });

  it('sets status and Output with check/update and its JSON body', async () => {
    const { url, consul } = await startServer(new ManualClock());
    await consul.agent.check.register({ name: 'disk', ttl: '30s' } as never);
    const update = (body: unknown): Promise<unknown> => put(`${url}/v1/agent/check/update/disk`, JSON.stringify(body));
    await update({ Status: 'warning', Output: 'disk 91%' });
    expect(((await consul.agent.checks()) as unknown as AgentChecks)['disk']).toMatchObject({
      Status: 'warning',
      Output: 'disk 91%',
    });
    await update({ status: 'passing' });
    expect(((await consul.agent.checks()) as unknown as AgentChecks)['disk']).toMatchObject({
      Status: 'passing',
      Output: '',
    });
  });

  it('refuses a bad check/update with 400 and changes nothing', async () => {
    const { url, consul } = await startServer(new ManualClock());
    await consul.agent.check.register({ name: 'disk', ttl: '30s' } as never);
    for (const [body, message] of [
      ['{"Status": "ok"}', 'Invalid check status: "ok"'],
      ['{}', 'Invalid check status: ""'],
      ['{"Status": "passing", "Output": 3}', 'Output'],
      ['not json', 'not valid JSON'],
      ['[1]', 'JSON object'],
    ] as const) {
      const reply = await put(`${url}/v1/agent/check/update/disk`, body);
      expect(reply.status).toBe(400);
      expect(reply.text).toContain(message);
    }
    expect(((await consul.agent.checks()) as unknown as AgentChecks)['disk']).toMatchObject({
      Status: 'critical',
      Output: '',
    });
    const unknown = await put(`${url}/v1/agent/check/update/nope`, '{"Status": "passing"}');
    expect(unknown.status).toBe(404);
  });

  it('refuses a check registration it cannot accept with 400 naming the field, and changes nothing', async () => {
    const { url, consul } = await startServer(new ManualClock());
    for (const [body, field] of [
      ['{"TTL": "10s"}', 'Name'],
      ['{"Name": "disk"}', 'TTL'],
      ['{"Name": "disk", "TTL": "ten"}', 'TTL'],
      ['{"Name": "disk", "TTL": "10s", "Status": "ok"}', 'Status'],
      ['{"Name": "disk", "HTTP": "http://127.0.0.1:1/"}', 'Interval'],
      ['{"Name": "disk", "HTTP": "nope", "Interval": "10s"}', 'HTTP'],
      ['{"Name": "disk", "TCP": "127.0.0.1:22", "Interval": "10s"}', 'TCP'],
      ['{"Name": "disk", "ServiceID": 5, "TTL": "10s"}', 'ServiceID'],
      ['', 'body'],
    ] as const) {
      const reply = await put(`${url}/v1/agent/check/register`, body);
      expect([reply.status, reply.text]).toEqual([400, expect.stringContaining(field)]);
    }
    const unknownService = await put(
      `${url}/v1/agent/check/register`,
      '{"Name": "a", "ServiceID": "nope", "TTL": "10s"}',
    );
    expect([unknownService.status, unknownService.text]).toEqual([404, 'ServiceID "nope" does not exist']);
    expect(await consul.agent.checks()).toEqual({});
    expect((await health(url, 'nope')).index).toBe(1);
  });

  it('refuses pass/warn/fail/update of an HTTP check, whose own runs set its status', async () => {
    const { url, consul } = await startServer(new ManualClock());
    // Nothing listens on port 1: the check's runs fail, which does not matter here.
    await consul.agent.check.register({ name: 'web', http: 'http://127.0.0.1:1/', interval: '10s' } as never);
    const reply = await put(`${url}/v1/agent/check/pass/web`);
    expect([reply.status, reply.text]).toEqual([400, 'CheckID "web" does not have associated TTL']);
    const update = await put(`${url}/v1/agent/check/update/web`, '{"Status": "passing"}');
    expect(update.status).toBe(400);
  });
});

describe('agent self', () => {
  it('describes the node as the Go and npm clients read it', async () => {
    const { consul } = await startServer();
    const self = (await consul.agent.self()) as {
      Config: Record<string, unknown>;
      Member: Record<string, unknown>;
      Meta: Record<string, string>;
    };
    expect(self.Config).toMatchObject({ Datacenter: 'dc1', NodeName: 'trellis', Server: true });
    expect(self.Config['NodeID']).toMatch(/^[0-9a-f-]{36}$/);
    expect(self.Member).toMatchObject({ Name: 'trellis', Addr: '127.0.0.1', Status: 1 });
    expect(self.Meta).toEqual({ 'consul-network-segment': '' });
    // The node ID is the one every health entry carries.
    await consul.agent.service.register({ name: 'users' });
    const [entry] = (await consul.health.service('users')) as { Node: { ID: string } }[];
    expect(entry?.Node.ID).toBe(self.Config['NodeID']);
  });
});
