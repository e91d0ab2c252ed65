import type http from 'node:http';
import { filterStage, type ServiceInstance, type TelemetryEvent } from '@trellis/core';
import { ServiceClient } from '@trellis/client';
import { TimeoutError } from '@trellis/resilience';
import { Discovery, MemoryRegistry } from '@trellis/registry';
import { startServer, type TestServer } from './http-fixtures.js';

/** A server that never answers, and tells when a request it holds is closed by the caller. */
async function slowServer(id: string): Promise<{ server: TestServer; closed: Promise<void>; received: Promise<void> }> {
  let onReceived!: () => void;
  let onClosed!: () => void;
  const received = new Promise<void>((resolve) => (onReceived = resolve));
  const closed = new Promise<void>((resolve) => (onClosed = resolve));
  const server = await startServer(id, (req: http.IncomingMessage, _body, res: http.ServerResponse) => {
    onReceived();
    res.on('close', () => {
      if (!res.writableEnded) onClosed();
    });
    void req;
  });
  return { server, closed, received };
}

describe('timeouts and retries over real HTTP', () => {
  let registry: MemoryRegistry;
  let discovery: Discovery;
  const servers: TestServer[] = [];
  const clients: ServiceClient[] = [];

  const register = (instance: ServiceInstance): Promise<void> =>
    registry.register({ instance, ttlMs: 60_000, deregisterAfterMs: 60_000 });

  beforeEach(() => {
    registry = new MemoryRegistry();
    discovery = new Discovery(registry);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await discovery.close();
    await registry.close();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('an attempt timeout cancels the request: the slow server sees its connection closed', async () => {
    const slow = await slowServer('users-1');
    servers.push(slow.server);
    await register(slow.server.instance);
    await discovery.instances('users'); // so that the timeout falls while the request is in flight
    const client = new ServiceClient({ service: 'users', discovery, attemptTimeoutMs: 500, retry: false });
    clients.push(client);

    const error: unknown = await client.get('/users/1').catch((e: unknown) => e);
    expect(TimeoutError.is(error)).toBe(true);
    expect(error).toMatchObject({ scope: 'attempt', instance: 'users-1' });
    await slow.closed; // resolves only when the server's response was cut off before it answered
  });

  it('a deadline cancels the request in flight through the signal it hands down', async () => {
    const slow = await slowServer('users-1');
    servers.push(slow.server);
    await register(slow.server.instance);
    // Long enough for the request to reach the server on a loaded machine (at 150 ms a CI run
    // once timed out before sending, and the server never had a request to see closed), and with
    // the instances already known, so that the deadline falls while the request is in flight.
    await discovery.instances('users');
    const client = new ServiceClient({ service: 'users', discovery, deadlineMs: 1_000 });
    clients.push(client);
    const error: unknown = await client.get('/slow').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'TIMEOUT', scope: 'deadline' });
    await slow.received;
    await slow.closed;
  });

  it('a filter that copies the call with a spread below the timeout still lets the timeout cancel the request', async () => {
    const slow = await slowServer('users-1');
    servers.push(slow.server);
    await register(slow.server.instance);
    await discovery.instances('users');
    const client = new ServiceClient({
      service: 'users',
      discovery,
      retry: false,
      attemptTimeoutMs: 500,
      stack: (s) =>
        s.insertAfter(
          'attempt-timeout',
          filterStage(
            'stamp',
            (call, context, next) => next({ ...call, headers: { ...call.headers, 'x-caller': 'forum' } }, context),
            'attempt',
          ),
        ),
    });
    clients.push(client);
    const error: unknown = await client.get('/users/1').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'TIMEOUT', scope: 'attempt' });
    await slow.closed; // the request was aborted, not left to run
  });

  it('a retry goes to another real instance when the first answers 503', async () => {
    const unavailable = await startServer('users-1', (_req, _body, res) => {
      res.statusCode = 503;
      res.end('{"error":"overloaded"}');
    });
    const healthy = await startServer('users-2');
    servers.push(unavailable, healthy);
    await register(unavailable.instance);
    await register(healthy.instance);
    // The client's own retry (as configured here) and round robin, to know where first attempts go.
    const client = new ServiceClient({
      service: 'users',
      discovery,
      strategy: 'round-robin',
      breakers: false,
      retry: { random: () => 0 },
    });
    clients.push(client);

    for (let i = 0; i < 4; i++) expect(await client.get('/users/1')).toEqual({ servedBy: 'users-2' });
    // Round robin sent every other first attempt to users-1; each was retried on users-2.
    expect(unavailable.requests).toHaveLength(2);
    expect(healthy.requests).toHaveLength(4);
  });

  it('a timed-out attempt is retried on another real instance', async () => {
    const slow = await slowServer('users-1');
    const healthy = await startServer('users-2');
    servers.push(slow.server, healthy);
    await register(slow.server.instance);
    await register(healthy.instance);
    await discovery.instances('users');
    const client = new ServiceClient({
      service: 'users',
      discovery,
      strategy: 'round-robin',
      retry: { random: () => 0 },
      attemptTimeoutMs: 500,
    });
    clients.push(client);

    expect(await client.get('/users/1')).toEqual({ servedBy: 'users-2' });
    await slow.received;
    await slow.closed;
  });

  it('a hedged call, under P2C and the default attempt timeout, goes to another instance than the slow first one', async () => {
    const slow = await slowServer('users-1');
    const fast = await startServer('users-2');
    const other = await startServer('users-3');
    servers.push(slow.server, fast, other);
    for (const s of [slow.server, fast, other]) await register(s.instance);
    // P2C over peak EWMA, the default; with random() = 0 its first pick is the first instance, the slow one.
    const client = new ServiceClient({ service: 'users', discovery, random: () => 0, hedging: { delayMs: 50 } });
    clients.push(client);
    const events: TelemetryEvent[] = [];
    client.onEvent((e) => events.push(e));

    const answer = await client.get<{ servedBy: string }>('/users/1');
    expect(answer.servedBy).not.toBe('users-1');
    await slow.received; // the first attempt did go to the slow instance
    await slow.closed; // and was cancelled once the hedge answered
    // The hedge knew where the first attempt went (the attempt timeout's own signal no longer hides it).
    expect(events.filter((e) => e.type === 'hedge-sent')).toEqual([
      { type: 'hedge-sent', service: 'users', firstInstance: 'users-1' },
    ]);
    const picks = events.filter((e) => e.type === 'instance-picked').map((e) => e.instance);
    expect(picks[0]).toBe('users-1');
    expect(picks[1]).not.toBe('users-1');
    expect(slow.server.requests.length + fast.requests.length + other.requests.length).toBeLessThanOrEqual(2);
  });
});
