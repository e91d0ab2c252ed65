import { ManualClock, type Call, type Reply, type ServiceInstance } from '@trellis/core';
import {
  Bulkhead,
  BulkheadFullError,
  ConcurrencyLimit,
  PerKey,
  RateLimit,
  RateLimitedError,
  TokenBucket,
} from '@trellis/resilience';
import { composeStages, configField } from '../fixtures.js';

const instance: ServiceInstance = {
  id: 'mail-1',
  service: 'mail',
  address: '127.0.0.1',
  port: 1,
  tags: [],
  meta: { weight: 1, labels: {} },
};
const call = (headers: Record<string, string> = {}): Call => ({
  service: 'mail',
  method: 'POST',
  path: '/send',
  headers,
});
const ok: Reply = { status: 200, headers: {}, body: 'sent', instance };

describe('rateLimit filter', () => {
  it('lets calls through within the rate and refuses the rest with RATE_LIMITED and retryAfterMs', async () => {
    const clock = new ManualClock();
    let sent = 0;
    const filter = new RateLimit(new TokenBucket({ ratePerSecond: 2, burst: 1, clock }));
    const rejected: unknown[] = [];
    filter.onRejected((e) => rejected.push(e));
    const send = composeStages([filter], async () => {
      sent++;
      return ok;
    });
    expect(await send(call())).toBe(ok);
    const error: unknown = await send(call()).catch((e: unknown) => e);
    expect(RateLimitedError.is(error)).toBe(true);
    expect(error).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 500, service: 'mail', retryable: false });
    expect(sent).toBe(1);
    expect(rejected).toEqual([
      { type: 'limit-rejected', service: 'mail', limit: 'rate', scope: '"mail"', retryAfterMs: 500 },
    ]);
    clock.advance(500);
    expect(await send(call())).toBe(ok);
  });

  it('limits per key of the call, naming the key in the error', async () => {
    const clock = new ManualClock();
    const perUser = new PerKey({ clock, create: () => new TokenBucket({ ratePerSecond: 1, burst: 1, clock }) });
    const send = composeStages(
      [new RateLimit({ perKey: perUser, key: (c: Call) => c.headers['x-user'] ?? 'anonymous' }, { name: 'mail-out' })],
      async () => ok,
    );
    await send(call({ 'x-user': 'ada' }));
    await send(call({ 'x-user': 'grace' }));
    await expect(send(call({ 'x-user': 'ada' }))).rejects.toThrow('rate limit of "mail-out" for key "ada" reached');
  });

  it('refuses a per-key choice without a key function', () => {
    const perKey = new PerKey({ create: () => new TokenBucket({ ratePerSecond: 1 }) });
    expect(configField(() => new RateLimit({ perKey } as never))).toBe('key');
  });
});

describe('execute', () => {
  it('limits any async function: a rate limit refuses beyond its rate, a bulkhead beyond its slots', async () => {
    const clock = new ManualClock();
    const rate = new RateLimit(new TokenBucket({ ratePerSecond: 1, burst: 1, clock }), { name: 'orders-db' });
    await expect(rate.execute(async () => 'rows')).resolves.toBe('rows');
    await expect(rate.execute(async () => 'rows')).rejects.toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 1_000 });
    const pool = new Bulkhead(new ConcurrencyLimit({ maxConcurrent: 1, clock }));
    let release: () => void = () => undefined;
    const held = pool.execute(() => new Promise<void>((resolve) => (release = resolve)));
    await expect(pool.execute(async () => 'second')).rejects.toMatchObject({ code: 'BULKHEAD_FULL' });
    release();
    await held;
    await expect(pool.execute(async () => 'third')).resolves.toBe('third');
  });
});

describe('bulkhead filter', () => {
  it('holds a slot for the whole call, refuses beyond the limit, and frees the slot on success and failure', async () => {
    const limit = new ConcurrencyLimit({ maxConcurrent: 1, clock: new ManualClock() });
    const pending: Array<{ resolve: (r: Reply) => void; reject: (e: unknown) => void }> = [];
    const filter = new Bulkhead(limit);
    const rejected: unknown[] = [];
    filter.onRejected((e) => rejected.push(e));
    const send = composeStages(
      [filter],
      () => new Promise<Reply>((resolve, reject) => pending.push({ resolve, reject })),
    );
    const first = send(call());
    await Promise.resolve();
    expect(limit.active).toBe(1);
    const refused: unknown = await send(call()).catch((e: unknown) => e);
    expect(BulkheadFullError.is(refused)).toBe(true);
    expect(rejected).toEqual([
      {
        type: 'limit-rejected',
        service: 'mail',
        limit: 'concurrency',
        scope: '"concurrency"',
        retryAfterMs: undefined,
      },
    ]);
    pending[0]?.resolve(ok);
    expect(await first).toBe(ok);
    expect(limit.active).toBe(0);
    const failing = send(call());
    await Promise.resolve();
    pending[1]?.reject(new Error('boom'));
    await expect(failing).rejects.toThrow('boom');
    expect(limit.idle).toBe(true);
  });

  it('queues a call until a slot frees, then runs it', async () => {
    const clock = new ManualClock();
    const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 100, clock });
    const release: Array<() => void> = [];
    const started: number[] = [];
    let n = 0;
    const send = composeStages([new Bulkhead(limit)], () => {
      const id = ++n;
      started.push(id);
      return new Promise<Reply>((resolve) => release.push(() => resolve({ ...ok, body: id })));
    });
    const a = send(call());
    const b = send(call());
    await Promise.resolve();
    expect(started).toEqual([1]);
    release[0]?.();
    expect((await a).body).toBe(1);
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([1, 2]);
    release[1]?.();
    expect((await b).body).toBe(2);
    expect(limit.idle).toBe(true);
  });
});
