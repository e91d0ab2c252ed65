import { z } from 'zod';
import type { FastifyRequest } from 'fastify';
import { ManualClock } from '@trellis/core';
import {
  Bulkhead,
  Controller,
  Get,
  Param,
  RateLimit,
  Signal,
  Timeout,
  TrellisApp,
  type AppOptions,
} from '@trellis/app';
import { testApps } from './test-apps.js';

/** A promise the test resolves, and one that says when a method is waiting on it. */
class Gate {
  #open!: () => void;
  #entered!: () => void;
  readonly opened = new Promise<void>((resolve) => (this.#open = resolve));
  readonly entered = new Promise<void>((resolve) => (this.#entered = resolve));
  async pass(): Promise<void> {
    this.#entered();
    await this.opened;
  }
  open(): void {
    this.#open();
  }
}

describe('governance decorators on controller methods', () => {
  const apps = testApps();
  const make = apps.app;

  const start = async (options: Partial<AppOptions>): Promise<string> => (await make(options).start()).url;

  it('answers beyond @RateLimit with 429, Retry-After and the inbound limit answer, before validation', async () => {
    const clock = new ManualClock();
    let ran = 0;
    @Controller('/users')
    class UsersController {
      @Get('/:id')
      @RateLimit({ ratePerSecond: 0.5, burst: 2 })
      one(@Param('id', z.string().regex(/^\d+$/)) id: string): unknown {
        ran++;
        return { id };
      }

      @Get('/:id/free')
      free(): unknown {
        return { free: true };
      }
    }
    const url = await start({ clock, controllers: [UsersController] });

    // An invalid request spends a token too: the limit comes first, then validation (400).
    expect((await fetch(`${url}/users/x`)).status).toBe(400);
    expect((await fetch(`${url}/users/1`)).status).toBe(200);
    const limited = await fetch(`${url}/users/2`);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('2');
    expect(await limited.json()).toEqual({
      error: 'RATE_LIMITED',
      message: 'too many requests; retry in 2000 ms',
      retryAfterMs: 2_000,
    });
    expect((await fetch(`${url}/users/x`)).status).toBe(429);
    expect(ran).toBe(1);
    // The bucket is the route's: another route of the same controller is not limited.
    expect((await fetch(`${url}/users/2/free`)).status).toBe(200);
    clock.advance(2_000);
    expect((await fetch(`${url}/users/2`)).status).toBe(200);
  });

  it('limits per key of the request with @RateLimit({ key }), and applies a class-level policy to every method', async () => {
    const clock = new ManualClock();
    @Controller('/posts')
    @RateLimit({ ratePerSecond: 1, burst: 1, key: (request: FastifyRequest) => String(request.headers['x-caller']) })
    class PostsController {
      @Get('/:id')
      one(): unknown {
        return { ok: true };
      }

      @Get()
      all(): unknown {
        return [];
      }
    }
    const url = await start({ clock, controllers: [PostsController] });
    const as = async (caller: string, path = '/posts/1'): Promise<number> =>
      (await fetch(`${url}${path}`, { headers: { 'x-caller': caller } })).status;

    expect(await as('forum')).toBe(200);
    expect(await as('forum')).toBe(429);
    expect(await as('chat')).toBe(200);
    expect(await as('forum', '/posts')).toBe(200);
    expect(await as('forum', '/posts')).toBe(429);
  });

  it('answers beyond @Bulkhead with 503 BULKHEAD_FULL while a slot is held, and frees the slot when the response ends', async () => {
    const gates: Gate[] = [];
    @Controller('/reports')
    class ReportsController {
      @Get('/:id')
      @Bulkhead({ maxConcurrent: 1 })
      async one(@Param('id') id: string): Promise<unknown> {
        const gate = new Gate();
        gates.push(gate);
        await gate.pass();
        return { id };
      }
    }
    const url = await start({ controllers: [ReportsController] });

    const first = fetch(`${url}/reports/1`);
    await waitFor(() => gates[0]);
    await gates[0]?.entered;
    const refused = await fetch(`${url}/reports/2`);
    expect(refused.status).toBe(503);
    expect(await refused.json()).toEqual({
      error: 'BULKHEAD_FULL',
      message: 'too many requests in flight; try another instance',
    });
    gates[0]?.open();
    expect(await (await first).json()).toEqual({ id: '1' });

    const third = fetch(`${url}/reports/3`);
    await waitFor(() => gates[1]);
    gates[1]?.open();
    expect((await third).status).toBe(200);
    // Released exactly once each: one slot again, not two.
    const fourth = fetch(`${url}/reports/4`);
    await waitFor(() => gates[2]);
    await gates[2]?.entered;
    expect((await fetch(`${url}/reports/5`)).status).toBe(503);
    gates[2]?.open();
    expect((await fourth).status).toBe(200);
  });

  it('queues within @Bulkhead({ maxQueue }) and serves the waiting request when the slot frees', async () => {
    const gate = new Gate();
    let served = 0;
    @Controller('/jobs')
    class JobsController {
      @Get('/:id')
      @Bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 60_000 })
      async one(@Param('id') id: string): Promise<unknown> {
        served++;
        if (id === '1') await gate.pass();
        return { id };
      }
    }
    const app = make({ controllers: [JobsController] });
    const arrived: string[] = [];
    app.http.addHook('onRequest', (request, _reply, done) => {
      arrived.push(request.url);
      done();
    });
    const { url } = await app.start();
    const first = fetch(`${url}/jobs/1`);
    await gate.entered;
    const queued = fetch(`${url}/jobs/2`);
    // Once it has arrived, the route's hook has put it in the queue: a third is refused.
    await waitFor(() => (arrived.includes('/jobs/2') ? true : undefined));
    await new Promise((resolve) => setImmediate(resolve));
    expect((await fetch(`${url}/jobs/3`)).status).toBe(503);
    expect(served).toBe(1);
    gate.open();
    expect(await (await first).json()).toEqual({ id: '1' });
    expect(await (await queued).json()).toEqual({ id: '2' });
  });

  it('answers 504 when a @Timeout method has not answered, aborting its signal, and its outbound calls inherit the deadline', async () => {
    const clock = new ManualClock();
    const seen: Array<string | undefined> = [];
    const downstream = make({ service: 'audit' });
    downstream.http.get('/audit', async (request) => {
      const header = request.headers['x-trellis-timeout-ms'];
      seen.push(typeof header === 'string' ? header : undefined);
      return { ok: true };
    });
    await downstream.start();

    const gate = new Gate();
    const reasons: unknown[] = [];
    let late: unknown;
    const slow: { app?: TrellisApp } = {};
    @Controller('/slow')
    class SlowController {
      @Get('/:id')
      @Timeout(250)
      async one(@Param('id') id: string, @Signal() signal: AbortSignal): Promise<unknown> {
        await slow.app?.client('audit').get('/audit');
        signal.addEventListener('abort', () => reasons.push(signal.reason));
        if (id === 'wait') await gate.pass();
        late = 'returned after the 504';
        return { id };
      }
    }
    slow.app = make({ clock, calls: ['audit'], controllers: [SlowController] });
    const { url } = await slow.app.start();

    // In time: served, and the outbound call carried the method's 250 ms.
    expect(await (await fetch(`${url}/slow/fast`)).json()).toEqual({ id: 'fast' });
    expect(seen).toEqual(['250']);
    // The caller's own deadline, when tighter, stays.
    expect((await fetch(`${url}/slow/fast`, { headers: { 'x-trellis-timeout-ms': '100' } })).status).toBe(200);
    expect(seen).toEqual(['250', '100']);

    const waiting = fetch(`${url}/slow/wait`);
    await gate.entered;
    clock.advance(250);
    const timedOut = await waiting;
    expect(timedOut.status).toBe(504);
    expect(await timedOut.json()).toEqual({ error: 'TIMEOUT', message: 'GET /slow/:id did not answer within 250 ms' });
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatchObject({ name: 'TimeoutError', code: 'TIMEOUT', scope: 'deadline', timeoutMs: 250 });
    gate.open();
    await waitFor(() => late);
  });
});

/** Polls `probe` on the event loop (not the clock) until it gives a value; bounded. */
async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 1_000; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error('waitFor: gave up');
}
