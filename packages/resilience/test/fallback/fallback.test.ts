import {
  ConfigError,
  ConnectionError,
  ManualClock,
  NoInstancesError,
  TrellisError,
  UpstreamStatusError,
  type Call,
  type ErrorCode,
  type Reply,
  type ServiceInstance,
} from '@trellis/core';
import {
  CircuitBreakerRegistry,
  CircuitOpenError,
  Fallback,
  fallbackHeader,
  serviceCircuitBreaker,
  type FallbackAnswer,
} from '@trellis/resilience';
import { adapt, composeStages } from '../fixtures.js';

const fallback = (...args: ConstructorParameters<typeof Fallback>) => adapt(new Fallback(...args));

const users1: ServiceInstance = {
  id: 'users-1',
  service: 'users',
  address: '127.0.0.1',
  port: 1,
  tags: [],
  meta: { weight: 1, labels: {} },
};
const call: Call = { service: 'users', method: 'GET', path: '/users', headers: {} };
const reply = (status: number, body: unknown = 'live'): Reply => ({ status, headers: {}, body, instance: users1 });
const failWith = (error: unknown) => async (): Promise<Reply> => {
  throw error;
};
const localError = (code: string, retryable = false): TrellisError =>
  new TrellisError(code as ErrorCode, `${code} here`, { service: 'users', retryable });

describe('fallback', () => {
  it('answers with a fixed value when the circuit is open, marked as a fallback', async () => {
    const registry = new CircuitBreakerRegistry({ minimumCalls: 1, clock: new ManualClock() });
    try {
      const send = composeStages([new Fallback({ body: [] }), serviceCircuitBreaker(registry)], async () => reply(503));
      expect((await send(call)).status).toBe(503); // a 5xx reply passes through by default, and opens the breaker
      const answer = await send(call);
      expect(answer).toMatchObject({
        status: 200,
        body: [],
        headers: { [fallbackHeader]: 'CIRCUIT_OPEN' },
        instance: { id: 'fallback', service: 'users' },
      });
    } finally {
      await registry.close();
    }
  });

  it('hands the cause and the call to a function, and answers with what it returns', async () => {
    const seen: unknown[] = [];
    const filter = fallback(async (cause, c): Promise<FallbackAnswer> => {
      seen.push(cause, c?.path);
      return { status: 203, headers: { 'x-from': 'cache' }, body: `cached ${c?.path}` };
    });
    const open = new CircuitOpenError({ service: 'users', retryAfterMs: 500 });
    const answer = await filter(call, failWith(open));
    expect(seen).toEqual([open, '/users']);
    expect(answer).toMatchObject({
      status: 203,
      body: 'cached /users',
      headers: { 'x-from': 'cache', [fallbackHeader]: 'CIRCUIT_OPEN' },
    });
  });

  it.each(['RATE_LIMITED', 'BULKHEAD_FULL', 'TIMEOUT', 'CIRCUIT_OPEN'])('answers for %s by default', async (code) => {
    const answer = await fallback({ body: 'spare' })(call, failWith(localError(code)));
    expect(answer.headers[fallbackHeader]).toBe(code);
  });

  it('answers for any retryable Trellis error, as retries exhausted leave it', async () => {
    const refused = new ConnectionError('users', 'users-1', false, new Error('ECONNREFUSED'));
    const answer = await fallback({ body: 'spare' })(call, failWith(refused));
    expect(answer.headers[fallbackHeader]).toBe('CONNECTION_FAILED');
  });

  it('lets other errors through: non-retryable codes not listed, and foreign errors', async () => {
    const filter = fallback({ body: 'spare' });
    const none = new NoInstancesError('users');
    await expect(filter(call, failWith(none))).rejects.toBe(none);
    const foreign = new TypeError('bug');
    await expect(filter(call, failWith(foreign))).rejects.toBe(foreign);
  });

  it('answers only for the codes it is given, when told to ignore retryable errors', async () => {
    const filter = fallback({ body: 'spare' }, { codes: ['NO_INSTANCES'], retryable: false });
    expect((await filter(call, failWith(new NoInstancesError('users')))).body).toBe('spare');
    const limited = localError('RATE_LIMITED', true);
    await expect(filter(call, failWith(limited))).rejects.toBe(limited);
  });

  it('answers for 5xx replies only when asked, with the status as the cause', async () => {
    expect((await fallback({ body: 'spare' })(call, async () => reply(500))).body).toBe('live');
    let cause: unknown;
    const filter = fallback(
      (c) => {
        cause = c;
        return { body: 'spare' };
      },
      { failureReplies: true },
    );
    expect((await filter(call, async () => reply(502, 'bad gateway'))).body).toBe('spare');
    expect(cause).toBeInstanceOf(UpstreamStatusError);
    expect(cause).toMatchObject({ code: 'UPSTREAM_STATUS', status: 502, body: 'bad gateway', instance: 'users-1' });
    expect((await filter(call, async () => reply(404))).body).toBe('live');
  });

  it('takes a predicate for which replies fail', async () => {
    const filter = fallback({ body: 'spare' }, { failureReplies: (r) => r.status === 429 });
    expect((await filter(call, async () => reply(429))).body).toBe('spare');
    expect((await filter(call, async () => reply(503))).body).toBe('live');
  });

  it('never answers a call whose caller gave up', async () => {
    const controller = new AbortController();
    controller.abort();
    const timeout = localError('TIMEOUT', true);
    await expect(fallback({ body: 'spare' })({ ...call, signal: controller.signal }, failWith(timeout))).rejects.toBe(
      timeout,
    );
  });

  it('passes on what a declining function throws', async () => {
    const filter = fallback((cause) => {
      throw cause;
    });
    const timeout = localError('TIMEOUT', true);
    await expect(filter(call, failWith(timeout))).rejects.toBe(timeout);
  });

  it('leaves successful replies alone', async () => {
    const live = reply(200);
    await expect(fallback({ body: 'spare' })(call, async () => live)).resolves.toBe(live);
  });

  it('rejects an answer that is neither a function nor a body', () => {
    expect(() => fallback({} as FallbackAnswer)).toThrow(ConfigError);
    expect(() => fallback(null as unknown as FallbackAnswer)).toThrow('fallback.answer');
  });
});
