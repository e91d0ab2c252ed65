import {
  ConnectionError,
  NoInstancesError,
  UpstreamStatusError,
  type Attempt,
  type Filter,
  type Reply,
  type ServiceInstance,
} from '@trellis/core';
import { ServiceClient } from '@trellis/client';
import { Discovery, MemoryRegistry } from '@trellis/registry';
import { deadInstance, startServer, type TestServer } from './http-fixtures.js';

describe('ServiceClient over real HTTP', () => {
  let registry: MemoryRegistry;
  let discovery: Discovery;
  let client: ServiceClient;
  const servers: TestServer[] = [];

  const register = (instance: ServiceInstance): Promise<void> =>
    registry.register({ instance, ttlMs: 60_000, deregisterAfterMs: 60_000 });

  async function serve(...ids: string[]): Promise<TestServer[]> {
    const started = await Promise.all(ids.map((id) => startServer(id)));
    servers.push(...started);
    for (const s of started) await register(s.instance);
    return started;
  }

  beforeEach(() => {
    registry = new MemoryRegistry();
    discovery = new Discovery(registry);
    client = new ServiceClient({ service: 'users', discovery });
  });
  afterEach(async () => {
    await client.close();
    await discovery.close();
    await registry.close();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('finds the service by name and spreads calls over its instances in turn', async () => {
    await serve('users-1', 'users-2');
    const servedBy: string[] = [];
    for (let i = 0; i < 6; i++) servedBy.push((await client.get<{ servedBy: string }>('/users/1')).servedBy);
    expect(servedBy).toEqual(['users-1', 'users-2', 'users-1', 'users-2', 'users-1', 'users-2']);
  });

  it('sends method, path, headers and a JSON body, and returns status, headers and body', async () => {
    const [server] = await serve('users-1');
    const reply = await client.request({
      method: 'put',
      path: '/users/7?notify=false',
      headers: { 'x-request-id': 'abc' },
      body: { name: 'Ada' },
    });
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('application/json');
    expect(reply.instance.id).toBe('users-1');
    expect(server?.requests).toEqual([{ method: 'PUT', url: '/users/7?notify=false', body: '{"name":"Ada"}' }]);
    await client.post('/users', { name: 'Grace' });
    expect(server?.requests[1]).toEqual({ method: 'POST', url: '/users', body: '{"name":"Grace"}' });
  });

  it('returns an error status as a reply from request(), and throws it from get()', async () => {
    const server = await startServer('users-1', (_req, _body, res) => {
      res.statusCode = 404;
      res.setHeader('content-type', 'application/json');
      res.end('{"error":"no user 9"}');
    });
    servers.push(server);
    await register(server.instance);
    expect((await client.request({ path: '/users/9' })).status).toBe(404);
    const error: unknown = await client.get('/users/9').catch((e: unknown) => e);
    expect(UpstreamStatusError.is(error)).toBe(true);
    expect(error).toMatchObject({ status: 404, body: { error: 'no user 9' }, retryable: false, instance: 'users-1' });
  });

  it('sends a call refused by a stopped instance to a live one', async () => {
    // The live server binds first, so the dead one's released port cannot be handed to it.
    const [live] = await serve('users-live');
    await register(await deadInstance('users-dead'));
    for (let i = 0; i < 4; i++) expect((await client.get<{ servedBy: string }>('/x')).servedBy).toBe('users-live');
    expect(live?.requests).toHaveLength(4);
  });

  it('says so when every known instance refuses', async () => {
    await register(await deadInstance('users-a'));
    await register(await deadInstance('users-b'));
    const error: unknown = await client.get('/x').catch((e: unknown) => e);
    expect(NoInstancesError.is(error)).toBe(true);
    expect((error as Error).message).toBe(
      'no instance of service "users" to call: all 2 known instances failed to connect',
    );
  });

  it('throws NoInstancesError when nothing is registered', async () => {
    await expect(client.get('/x')).rejects.toThrow(NoInstancesError);
  });

  it('does not resend a non-idempotent call an instance may have received', async () => {
    const resetting = await startServer('users-reset', (req) => req.socket.destroy());
    servers.push(resetting);
    await register(resetting.instance);
    const [other] = await serve('users-other');
    // Round robin starts with the first id in order: users-other, then users-reset.
    await client.get('/first');
    const error: unknown = await client.post('/orders', { item: 1 }).catch((e: unknown) => e);
    expect(ConnectionError.is(error) && error.sent).toBe(true);
    expect(other?.requests.map((r) => r.url)).toEqual(['/first']);
  });

  it('resends an idempotent call whose connection broke before an answer', async () => {
    const resetting = await startServer('users-reset', (req) => req.socket.destroy());
    servers.push(resetting);
    await register(resetting.instance);
    const [other] = await serve('users-other');
    await client.get('/first');
    expect(await client.get<{ servedBy: string }>('/second')).toEqual({ servedBy: 'users-other' });
    expect(resetting.requests.map((r) => r.url)).toEqual(['/second']);
    expect(other?.requests.map((r) => r.url)).toEqual(['/first', '/second']);
  });

  it('cancels a call when its signal aborts', async () => {
    const hanging = await startServer('users-slow', () => undefined);
    servers.push(hanging);
    await register(hanging.instance);
    const controller = new AbortController();
    const pending = client.get('/slow', { signal: controller.signal });
    await new Promise<void>((resolve) => {
      const check = (): void => (hanging.requests.length > 0 ? resolve() : void setImmediate(check));
      check();
    });
    controller.abort(new Error('caller gave up'));
    await expect(pending).rejects.toThrow('caller gave up');
  });

  it('runs its filters around every call, outermost first', async () => {
    await serve('users-1');
    const log: string[] = [];
    const named =
      (name: string): Filter =>
      async (call, next) => {
        log.push(`${name}>`);
        const reply = await next({ ...call, headers: { ...call.headers, [`x-${name}`]: '1' } });
        log.push(`<${name}:${reply.instance.id}`);
        return reply;
      };
    const filtered = new ServiceClient({ service: 'users', discovery, filters: [named('a'), named('b')] });
    try {
      await filtered.get('/users/1');
      expect(log).toEqual(['a>', 'b>', '<b:users-1', '<a:users-1']);
    } finally {
      await filtered.close();
    }
  });

  it('runs its attempt filters once per attempt, each seeing the instance chosen for it', async () => {
    const live = await startServer('users-1', (req, _body, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ attemptOn: req.headers['x-attempt-on'] }));
    });
    servers.push(live);
    await register(live.instance);
    await register(await deadInstance('users-dead'));
    const seen: string[] = [];
    const stamp: Filter<Attempt, Reply> = (attempt, next) => {
      seen.push(attempt.instance.id);
      return next({ ...attempt, headers: { ...attempt.headers, 'x-attempt-on': attempt.instance.id } });
    };
    const filtered = new ServiceClient({ service: 'users', discovery, attemptFilters: [stamp] });
    try {
      // Round robin starts on the first registered; the dead one refuses and failover tries the other.
      const answers = [await filtered.get('/users/1'), await filtered.get('/users/1')];
      expect(seen).toEqual(['users-1', 'users-dead', 'users-1']);
      expect(answers).toEqual([{ attemptOn: 'users-1' }, { attemptOn: 'users-1' }]);
    } finally {
      await filtered.close();
    }
  });
});
