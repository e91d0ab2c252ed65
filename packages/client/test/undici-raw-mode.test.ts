import { CallContext, type Call } from '@trellis/core';
import { ServiceClient, UndiciTransport } from '@trellis/client';
import { Discovery, MemoryRegistry } from '@trellis/registry';
import { startServer, type TestServer } from './http-fixtures.js';

const call = (over: Partial<Call> = {}): Call => ({ service: 'users', method: 'GET', path: '/', headers: {}, ...over });

describe('UndiciTransport in raw mode (for a proxy)', () => {
  const servers: TestServer[] = [];
  const transports: UndiciTransport[] = [];
  afterEach(async () => {
    await Promise.all(transports.splice(0).map((t) => t.close()));
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
  async function serve(handler: Parameters<typeof startServer>[1]): Promise<TestServer> {
    const server = await startServer('users-1', handler);
    servers.push(server);
    return server;
  }

  it('returns the body as the bytes received, JSON and HTML alike, where the default mode decodes JSON', async () => {
    const json = '{"a": 1,  "b":[2]}';
    const server = await serve((_req, _body, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(json);
    });
    const raw = new UndiciTransport({ raw: true });
    const decoding = new UndiciTransport();
    transports.push(raw, decoding);
    const bytes = await raw.send(call(), server.instance, new CallContext());
    expect(Buffer.isBuffer(bytes.body)).toBe(true);
    expect((bytes.body as Buffer).toString()).toBe(json);
    expect((await decoding.send(call(), server.instance, new CallContext())).body).toEqual({ a: 1, b: [2] });
  });

  it('keeps binary bodies byte for byte, both ways', async () => {
    const sent = Buffer.from([0, 255, 1, 254, 0x7b, 0x0a]);
    const server = await serve((_req, body, res) => {
      res.setHeader('content-type', 'application/octet-stream');
      res.end(Buffer.from(body, 'latin1'));
    });
    const raw = new UndiciTransport({ raw: true });
    transports.push(raw);
    const reply = await raw.send(
      call({ method: 'POST', body: sent, headers: { 'content-type': 'application/octet-stream' } }),
      server.instance,
      new CallContext(),
    );
    expect(server.requests[0]?.body).toBe(sent.toString());
    expect(Buffer.compare(reply.body as Buffer, Buffer.from(sent.toString(), 'latin1'))).toBe(0);
  });

  it('joins several set-cookie headers with a newline, so that a cookie with an Expires comma survives', async () => {
    const cookies = ['a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT', 'b=2; Path=/'];
    const server = await serve((_req, _body, res) => {
      res.setHeader('set-cookie', cookies);
      res.end('ok');
    });
    const raw = new UndiciTransport({ raw: true });
    transports.push(raw);
    const reply = await raw.send(call(), server.instance, new CallContext());
    expect(reply.headers['set-cookie']?.split('\n')).toEqual(cookies);
  });
});

describe('ServiceClient.pick', () => {
  it('picks an instance as the select stage would, skipping those to avoid, and says when none is left', async () => {
    const registry = new MemoryRegistry();
    const discovery = new Discovery(registry);
    const base = { service: 'chat', address: '127.0.0.1', tags: [], meta: { weight: 1, labels: {} } };
    await registry.register({ instance: { ...base, id: 'chat-1', port: 1 }, ttlMs: 60_000, deregisterAfterMs: 60_000 });
    await registry.register({ instance: { ...base, id: 'chat-2', port: 2 }, ttlMs: 60_000, deregisterAfterMs: 60_000 });
    const client = new ServiceClient({ service: 'chat', discovery, strategy: 'round-robin', transport: 'undici' });
    try {
      const picked = new Set([(await client.pick({ path: '/' })).id, (await client.pick({ path: '/' })).id]);
      expect(picked).toEqual(new Set(['chat-1', 'chat-2']));
      expect((await client.pick({ path: '/' }, new Set(['chat-1']))).id).toBe('chat-2');
      await expect(client.pick({ path: '/' }, new Set(['chat-1', 'chat-2']))).rejects.toMatchObject({
        code: 'NO_INSTANCES',
      });
    } finally {
      await client.close();
      await discovery.close();
      await registry.close();
    }
  });
});
