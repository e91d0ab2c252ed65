import { ManualClock } from '@trellis/core';
import { ConcurrencyLimit, PerKey, TokenBucket } from '@trellis/resilience';
import { type TrellisApp } from '@trellis/app';
import { testApps } from './test-apps.js';

/** Adds GET /slow, which answers only once `finish()` is called; `entered` resolves when a request is in it. */
function holdSlowRoute(app: TrellisApp): { entered: Promise<void>; finish: () => void } {
  let enter!: () => void;
  const entered = new Promise<void>((resolve) => (enter = resolve));
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  app.http.get('/slow', async () => {
    enter();
    await finished;
    return { done: true };
  });
  return { entered, finish };
}

describe('inbound limits of a TrellisApp', () => {
  const apps = testApps();
  const app = apps.app;

  it('answers requests beyond the rate with 429, Retry-After and RATE_LIMITED, and leaves /health and /trellis alone', async () => {
    const clock = new ManualClock();
    const users = app();
    users.http.get('/users/:id', async () => ({ ok: true })); // a route declared before the limit
    users.limitInbound({ rate: new TokenBucket({ ratePerSecond: 0.5, burst: 2, clock }) });
    const { url } = await users.start();

    expect((await fetch(`${url}/users/1`)).status).toBe(200);
    expect((await fetch(`${url}/users/2`)).status).toBe(200);
    const limited = await fetch(`${url}/users/3`);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('2');
    expect(await limited.json()).toMatchObject({ error: 'RATE_LIMITED', retryAfterMs: 2_000 });
    expect((await fetch(`${url}/health`)).status).toBe(200);
    // The status page shows the overload; a limit on it would hide it.
    expect((await fetch(`${url}/trellis`)).status).toBe(200);
    clock.advance(2_000);
    expect((await fetch(`${url}/users/3`)).status).toBe(200);
  });

  it('limits per key: one caller over its rate does not limit another', async () => {
    const clock = new ManualClock();
    const users = app();
    users.limitInbound({
      rate: {
        perKey: new PerKey({ clock, create: () => new TokenBucket({ ratePerSecond: 1, burst: 1, clock }) }),
        key: (request) => String(request.headers['x-caller'] ?? 'anonymous'),
      },
    });
    users.http.get('/users/1', async () => ({ ok: true }));
    const { url } = await users.start();
    const as = (caller: string): Promise<number> =>
      fetch(`${url}/users/1`, { headers: { 'x-caller': caller } }).then((r) => r.status);

    expect(await as('forum')).toBe(200);
    expect(await as('forum')).toBe(429);
    expect(await as('chat')).toBe(200);
  });

  it('answers requests beyond the concurrency limit with 503 BULKHEAD_FULL, and frees the slot when a response ends', async () => {
    const users = app();
    const limit = new ConcurrencyLimit({ maxConcurrent: 1, name: 'users-in' });
    users.limitInbound({ concurrency: limit });
    const { entered, finish } = holdSlowRoute(users);
    users.http.get('/fast', async () => ({ done: true }));
    const { url } = await users.start();

    const slow = fetch(`${url}/slow`);
    await entered;
    const refused = await fetch(`${url}/fast`);
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ error: 'BULKHEAD_FULL' });
    expect((await fetch(`${url}/health`)).status).toBe(200);
    finish();
    expect((await slow).status).toBe(200);
    expect((await fetch(`${url}/fast`)).status).toBe(200);
    expect(limit.idle).toBe(true);
  });

  it('queues a request for a slot and answers 503 when its queue wait times out', async () => {
    const clock = new ManualClock();
    const users = app();
    const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 100, clock });
    users.limitInbound({ concurrency: limit });
    const { entered, finish } = holdSlowRoute(users);
    const { url } = await users.start();

    const first = fetch(`${url}/slow`);
    await entered;
    const queued = fetch(`${url}/slow`);
    // Wait for the second request to reach the queue, then let its wait time out.
    for (let i = 0; i < 1_000 && limit.queued === 0; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(limit.queued).toBe(1);
    clock.advance(100);
    expect((await queued).status).toBe(503);
    finish();
    expect((await first).status).toBe(200);
  });

  it('frees the slot of a request whose caller went away', async () => {
    const users = app();
    const limit = new ConcurrencyLimit({ maxConcurrent: 1 });
    users.limitInbound({ concurrency: limit });
    let enter!: () => void;
    const entered = new Promise<void>((resolve) => (enter = resolve));
    let closed!: () => void;
    const responseClosed = new Promise<void>((resolve) => (closed = resolve));
    users.http.get('/hang', async (_request, reply) => {
      // Registered after the limit's own listener, so it runs after the slot is freed.
      reply.raw.once('close', closed);
      enter();
      await responseClosed;
      return { gone: true };
    });
    const { url } = await users.start();

    const caller = new AbortController();
    const hanging = fetch(`${url}/hang`, { signal: caller.signal }).catch((e: unknown) => e);
    await entered;
    expect(limit.active).toBe(1);
    caller.abort();
    await hanging;
    await responseClosed;
    expect(limit.active).toBe(0);
  });

  it('takes a queued request out of the queue when its caller goes away', async () => {
    const users = app();
    const limit = new ConcurrencyLimit({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 60_000 });
    users.limitInbound({ concurrency: limit });
    const { entered, finish } = holdSlowRoute(users);
    const { url } = await users.start();
    const settle = async (until: () => boolean): Promise<void> => {
      for (let i = 0; i < 1_000 && !until(); i++) await new Promise((resolve) => setImmediate(resolve));
    };

    const first = fetch(`${url}/slow`);
    await entered;
    const caller = new AbortController();
    const queued = fetch(`${url}/slow`, { signal: caller.signal }).catch((e: unknown) => e);
    await settle(() => limit.queued === 1);
    expect(limit.queued).toBe(1);
    caller.abort();
    await queued;
    await settle(() => limit.queued === 0);
    expect(limit.queued).toBe(0);
    finish();
    expect((await first).status).toBe(200);
    await settle(() => limit.idle);
    expect(limit.idle).toBe(true);
  });
});
