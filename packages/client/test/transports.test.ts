import { once } from 'node:events';
import type { Socket } from 'node:net';
import {
  CallContext,
  ConfigError,
  ConnectionError,
  ManualClock,
  UpstreamStatusError,
  type Call,
  type ServiceInstance,
} from '@trellis/core';
import { AxiosTransport, ServiceClient, UndiciTransport, type Transport, type TransportName } from '@trellis/client';
import { TimeoutError } from '@trellis/resilience';
import { Discovery, MemoryRegistry } from '@trellis/registry';
import { deadInstance, startServer, type TestServer } from './http-fixtures.js';

const call = (over: Partial<Call> = {}): Call => ({
  service: 'users',
  method: 'GET',
  path: '/users/1',
  headers: {},
  ...over,
});

/**
 * Keeps idle keep-alive connections open far longer than a test runs (Node closes them after
 * 5 s, and undici follows the server's hint), so that a closed connection proves the client
 * closed it.
 */
function keepIdleConnections(server: TestServer): void {
  server.server.keepAliveTimeout = 600_000;
}

/** Resolves when `socket` has closed (at once if it already has). */
async function closed(socket: Socket): Promise<void> {
  if (socket.destroyed) return;
  await once(socket, 'close');
}

// The same behaviour, case by case, from both transports: what ServiceClient and its filters
// rely on does not depend on which one sends.
describe.each<TransportName>(['axios', 'undici'])('the %s transport over real HTTP', (name) => {
  const servers: TestServer[] = [];
  const closeables: Array<{ close(): Promise<void> }> = [];
  const make = (): Transport => {
    const transport = name === 'axios' ? new AxiosTransport() : new UndiciTransport();
    closeables.push(transport);
    return transport;
  };
  async function serve(id: string, handler?: Parameters<typeof startServer>[1]): Promise<TestServer> {
    const server = await startServer(id, handler);
    keepIdleConnections(server);
    servers.push(server);
    return server;
  }
  afterEach(async () => {
    await Promise.all(closeables.splice(0).map((c) => c.close()));
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  describe('as a Transport', () => {
    it('sends method, path, headers and an object as JSON, and decodes a JSON answer', async () => {
      const server = await serve('users-1', (req, body, res) => {
        res.setHeader('content-type', 'application/json');
        res.setHeader('x-seen-type', req.headers['content-type'] ?? '');
        res.setHeader('set-cookie', ['a=1', 'b=2']);
        res.statusCode = 201;
        res.end(JSON.stringify({ got: JSON.parse(body) as unknown, header: req.headers['x-request-id'] }));
      });
      const reply = await make().send(
        call({
          method: 'PUT',
          path: '/users/7?notify=false',
          headers: { 'x-request-id': 'abc' },
          body: { name: 'Ada' },
        }),
        server.instance,
        new CallContext(),
      );
      expect(reply.status).toBe(201);
      expect(reply.body).toEqual({ got: { name: 'Ada' }, header: 'abc' });
      expect(reply.headers['x-seen-type']).toBe('application/json');
      expect(reply.headers['set-cookie']).toBe('a=1, b=2');
      expect(reply.instance).toBe(server.instance);
      expect(server.requests).toEqual([{ method: 'PUT', url: '/users/7?notify=false', body: '{"name":"Ada"}' }]);
    });

    it('sends a string body as it is, and returns text that is not JSON as a string, an empty body as ""', async () => {
      const server = await serve('users-1', (req, body, res) => {
        if (req.url === '/empty') {
          res.statusCode = 204;
          res.end();
        } else res.end(`echo ${body}`);
      });
      const transport = make();
      const text = await transport.send(
        call({ method: 'POST', path: '/echo', body: 'plain words' }),
        server.instance,
        new CallContext(),
      );
      expect(text.body).toBe('echo plain words');
      const empty = await transport.send(call({ path: '/empty' }), server.instance, new CallContext());
      expect(empty).toMatchObject({ status: 204, body: '' });
    });

    it("sends a forwarded request's end-to-end headers, whatever hop-by-hop ones it carries", async () => {
      const server = await serve('users-1', (req, _body, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ trace: req.headers['x-trace'] }));
      });
      const forwarded = { 'x-trace': 't-1', 'keep-alive': 'timeout=5', upgrade: 'h2c' };
      const reply = await make().send(call({ headers: forwarded }), server.instance, new CallContext());
      expect(reply).toMatchObject({ status: 200, body: { trace: 't-1' } });
    });

    it('returns 4xx and 5xx answers as replies, with their bodies', async () => {
      const server = await serve('users-1', (req, _body, res) => {
        res.statusCode = req.url === '/missing' ? 404 : 503;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ error: req.url }));
      });
      const transport = make();
      expect(await transport.send(call({ path: '/missing' }), server.instance, new CallContext())).toMatchObject({
        status: 404,
        body: { error: '/missing' },
      });
      expect(await transport.send(call({ path: '/busy' }), server.instance, new CallContext())).toMatchObject({
        status: 503,
        body: { error: '/busy' },
      });
    });

    it('fails a refused connection with a ConnectionError that says the call was not sent', async () => {
      const dead = await deadInstance('users-dead');
      const error: unknown = await make()
        .send(call(), dead, new CallContext())
        .catch((e: unknown) => e);
      expect(ConnectionError.is(error)).toBe(true);
      expect(error).toMatchObject({ code: 'CONNECTION_FAILED', sent: false, retryable: true, instance: 'users-dead' });
    });

    it('fails a connection reset mid-call with a ConnectionError that says the call may have run', async () => {
      const server = await serve('users-1', (req) => req.socket.destroy());
      const error: unknown = await make()
        .send(call(), server.instance, new CallContext())
        .catch((e: unknown) => e);
      expect(ConnectionError.is(error)).toBe(true);
      expect(error).toMatchObject({ sent: true, service: 'users', instance: 'users-1' });
    });

    it("cancels the request when the caller's signal aborts, rejecting with the signal's reason", async () => {
      const server = await serve('users-1', () => undefined); // never answers
      const controller = new AbortController();
      const arrived = once(server.server, 'request') as Promise<[unknown, NodeJS.EventEmitter]>;
      const sent = make().send(call(), server.instance, new CallContext({ signal: controller.signal }));
      const [, response] = await arrived;
      const cancelled = once(response, 'close');
      const reason = new Error('the caller gave up');
      controller.abort(reason);
      await expect(sent).rejects.toBe(reason);
      await cancelled; // the server saw the request go away
    });

    it('closes its keep-alive connections on close()', async () => {
      const server = await serve('users-1');
      const connected = once(server.server, 'connection') as Promise<[Socket]>;
      const transport = make();
      await transport.send(call(), server.instance, new CallContext());
      const [socket] = await connected;
      expect(socket.destroyed).toBe(false); // kept alive between calls
      await transport.close();
      await closed(socket);
    });
  });

  describe('under a ServiceClient', () => {
    let registry: MemoryRegistry;
    let discovery: Discovery;
    beforeEach(() => {
      registry = new MemoryRegistry();
      discovery = new Discovery(registry);
    });
    afterEach(async () => {
      await discovery.close();
      await registry.close();
    });
    const register = (instance: ServiceInstance): Promise<void> =>
      registry.register({ instance, ttlMs: 60_000, deregisterAfterMs: 60_000 });
    const client = (options: Partial<ConstructorParameters<typeof ServiceClient>[0]> = {}): ServiceClient => {
      const made = new ServiceClient({
        service: 'users',
        discovery,
        transport: name,
        strategy: 'round-robin',
        ...options,
      });
      closeables.push(made);
      return made;
    };

    it('fails over to another instance when one is down', async () => {
      const live = await serve('users-live');
      await register(await deadInstance('users-dead'));
      await register(live.instance);
      const users = client({ retry: false });
      for (let i = 0; i < 4; i++) expect(await users.get('/users/1')).toEqual({ servedBy: 'users-live' });
      expect(live.requests).toHaveLength(4);
    });

    it('cancels the request when the attempt times out', async () => {
      const clock = new ManualClock();
      const slow = await serve('users-1', () => undefined); // never answers
      await register(slow.instance);
      const users = client({ clock, attemptTimeoutMs: 500, retry: false });
      const arrived = once(slow.server, 'request') as Promise<[unknown, NodeJS.EventEmitter]>;
      const answer = users.get('/users/1').catch((e: unknown) => e);
      const [, response] = await arrived;
      const cancelled = once(response, 'close');
      clock.advance(500);
      const error = await answer;
      expect(TimeoutError.is(error)).toBe(true);
      expect(error).toMatchObject({ scope: 'attempt', timeoutMs: 500, instance: 'users-1' });
      await cancelled;
    });

    it('returns a 4xx or 5xx answer from request() and throws it from get()', async () => {
      const server = await serve('users-1', (req, _body, res) => {
        res.statusCode = req.url === '/users/9' ? 404 : 500;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ error: `status for ${req.url}` }));
      });
      await register(server.instance);
      const users = client({ retry: false });
      expect(await users.request({ path: '/users/9' })).toMatchObject({
        status: 404,
        body: { error: 'status for /users/9' },
      });
      expect(await users.request({ path: '/boom' })).toMatchObject({ status: 500 });
      const error: unknown = await users.get('/users/9').catch((e: unknown) => e);
      expect(UpstreamStatusError.is(error)).toBe(true);
      expect(error).toMatchObject({ status: 404, body: { error: 'status for /users/9' } });
    });
  });
});

describe('UndiciTransport pools', () => {
  const servers: TestServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
  async function serve(id: string): Promise<{ server: TestServer; connected: Promise<[Socket]> }> {
    const server = await startServer(id);
    keepIdleConnections(server);
    servers.push(server);
    return { server, connected: once(server.server, 'connection') as Promise<[Socket]> };
  }

  it('closes the pool of an instance that leaves discovery, and keeps the others', async () => {
    const registry = new MemoryRegistry();
    const discovery = new Discovery(registry);
    const a = await serve('users-a');
    const b = await serve('users-b');
    for (const { server } of [a, b]) {
      await registry.register({ instance: server.instance, ttlMs: 60_000, deregisterAfterMs: 60_000 });
    }
    const users = new ServiceClient({ service: 'users', discovery, transport: 'undici', strategy: 'round-robin' });
    try {
      await users.get('/users/1');
      await users.get('/users/1');
      const [socketA] = await a.connected;
      const [socketB] = await b.connected;
      const changed = new Promise((resolve) => discovery.onChanged(resolve));
      await registry.deregister(a.server.instance.id);
      await changed;
      await closed(socketA);
      expect(socketB.destroyed).toBe(false);
      expect(await users.get('/users/1')).toEqual({ servedBy: 'users-b' });
    } finally {
      await users.close();
      await discovery.close();
      await registry.close();
    }
  });

  it('keeps at most maxPools pools, closing the one unused for longest', async () => {
    const transport = new UndiciTransport({ maxPools: 2 });
    const [a, b, c] = await Promise.all([serve('users-a'), serve('users-b'), serve('users-c')]);
    try {
      await transport.send(call(), a.server.instance, new CallContext());
      await transport.send(call(), b.server.instance, new CallContext());
      await transport.send(call(), a.server.instance, new CallContext()); // a is now the most recently used
      await transport.send(call(), c.server.instance, new CallContext());
      expect(transport.pools).toBe(2);
      const [socketB] = await b.connected;
      await closed(socketB);
      const [socketA] = await a.connected;
      expect(socketA.destroyed).toBe(false);
    } finally {
      await transport.close();
    }
  });

  it('refuses sends after close() with a ClosedError, and bad options with a ConfigError', async () => {
    const transport = new UndiciTransport();
    await transport.close();
    const { server } = await serve('users-a');
    await expect(transport.send(call(), server.instance, new CallContext())).rejects.toMatchObject({ code: 'CLOSED' });
    expect(() => new UndiciTransport({ maxPools: 0 })).toThrow(ConfigError);
    const registry = new MemoryRegistry();
    const discovery = new Discovery(registry);
    expect(() => new ServiceClient({ service: 'users', discovery, transport: 'fetch' as TransportName })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', field: 'transport' }) as Error,
    );
    await discovery.close();
    await registry.close();
  });
});
