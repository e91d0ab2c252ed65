import {
  CallContext,
  compose,
  ConfigError,
  ManualClock,
  sleep,
  type Call,
  type InstanceHealth,
  type Reply,
  type ServiceInstance,
} from '@trellis/core';
import {
  LeastOutstanding,
  LoadBalancer,
  P2CPeakEwma,
  parseRoutingRules,
  RoundRobin,
  strategyFeedback,
  strategyNames,
  type PanicChange,
} from '@trellis/loadbalancer';
import { call, instance, seeded, tally } from './fixtures.js';

/** What the breaker package will provide: a set of ejected instance ids. */
class EjectedSet implements InstanceHealth {
  readonly ids = new Set<string>();
  isEjected(i: ServiceInstance): boolean {
    return this.ids.has(i.id);
  }
}

const [a, b, c] = [
  instance('a', { version: 'v1' }),
  instance('b', { version: 'v1' }),
  instance('c', { version: 'v2' }),
];
const all = [a, b, c];

describe('LoadBalancer', () => {
  it('picks with a strategy set live, keeping its routing rules and the instances ejected', () => {
    const health = new EjectedSet();
    const lb = new LoadBalancer({
      strategy: 'round-robin',
      health,
      rules: { default: { to: { version: 'v1' } } },
    });
    health.ids.add('b');
    const least = new LeastOutstanding();
    lb.setStrategy(least);
    expect([lb.name, lb.strategy]).toEqual(['least-outstanding', least]);
    // c is routed away, b ejected: a is the only pick.
    for (let i = 0; i < 3; i++) expect(lb.select(all, call())?.id).toBe('a');
    lb.setStrategy('round-robin');
    expect(lb.name).toBe('round-robin');
    expect(() => lb.setStrategy('nope' as never)).toThrow(ConfigError);
    expect(lb.name).toBe('round-robin');
  });

  it('skips ejected instances', () => {
    const health = new EjectedSet();
    health.ids.add('b');
    const lb = new LoadBalancer({ strategy: new RoundRobin(), health });
    expect(tally(() => lb.select(all, call()), 100)).toEqual({ a: 50, c: 50 });
    expect(lb.panicking).toBe(false);
  });

  it('uses every instance when all are ejected (panic), and says so once per change', () => {
    const health = new EjectedSet();
    const lb = new LoadBalancer({ strategy: new RoundRobin(), health });
    const changes: PanicChange[] = [];
    lb.onPanic((change) => changes.push(change));
    for (const i of all) health.ids.add(i.id);
    expect(tally(() => lb.select(all, call()), 30)).toEqual({ a: 10, b: 10, c: 10 });
    expect(lb.panicking).toBe(true);
    health.ids.delete('c');
    expect(tally(() => lb.select(all, call()), 10)).toEqual({ c: 10 });
    expect(changes).toEqual([
      { panicking: true, instances: 3, ejected: 3 },
      { panicking: false, instances: 3, ejected: 2 },
    ]);
  });

  it('panics below the panic threshold share of healthy instances', () => {
    const health = new EjectedSet();
    health.ids.add('a');
    health.ids.add('b');
    const lb = new LoadBalancer({ strategy: new RoundRobin(), health, panicThreshold: 0.5 });
    expect(tally(() => lb.select(all, call()), 30)).toEqual({ a: 10, b: 10, c: 10 });
    health.ids.delete('b');
    expect(tally(() => lb.select(all, call()), 30)).toEqual({ b: 15, c: 15 });
  });

  it('routes first, then skips ejected instances within the route, then panics within it', () => {
    const health = new EjectedSet();
    const lb = new LoadBalancer({
      strategy: new RoundRobin(),
      health,
      rules: { default: { to: { version: 'v1' } } },
    });
    health.ids.add('a');
    expect(tally(() => lb.select(all, call()), 10)).toEqual({ b: 10 });
    health.ids.add('b');
    // The v2 instance is healthy, but outside the route: panic keeps the call in v1.
    expect(tally(() => lb.select(all, call()), 10)).toEqual({ a: 5, b: 5 });
  });

  it("falls back to other zones when the caller's zone's instances are all ejected", () => {
    const health = new EjectedSet();
    const near = [instance('near-1', { zone: 'z1' }), instance('near-2', { zone: 'z1' })];
    const far = [instance('far-1', { zone: 'z2' })];
    const lb = new LoadBalancer({ strategy: 'zone-aware', zone: 'z1', health, random: seeded(33) });
    const list = [...near, ...far];
    expect(Object.keys(tally(() => lb.select(list, call()), 50)).sort()).toEqual(['near-1', 'near-2']);
    health.ids.add('near-1');
    health.ids.add('near-2');
    expect(tally(() => lb.select(list, call()), 50)).toEqual({ 'far-1': 50 });
    expect(lb.panicking).toBe(false);
  });

  it('sends no call to an instance of weight 0 (draining) with any strategy, unless all drain', () => {
    const drained = instance('d', { weight: 0 });
    for (const strategy of strategyNames) {
      const lb = new LoadBalancer({ strategy, random: seeded(7), zone: 'a' });
      const picked = tally(() => lb.select([drained, a, b], call()), 200);
      expect([strategy, picked['d'] ?? 0]).toEqual([strategy, 0]);
      expect(lb.select([drained, { ...drained, id: 'd2' }], call())?.id).toMatch(/^d/);
    }
  });

  it('picks nothing when the route has no instance', () => {
    const lb = new LoadBalancer({ rules: { default: { to: { version: 'v3' } } } });
    expect(lb.select(all, call())).toBeUndefined();
    expect(lb.select([], call())).toBeUndefined();
  });

  it('routes on the caller service given as an option', () => {
    const lb = new LoadBalancer({
      caller: 'forum',
      strategy: 'round-robin',
      rules: { routes: [{ match: { caller: 'forum' }, to: { version: 'v2' } }] },
    });
    expect(lb.select(all, call())?.id).toBe('c');
  });

  it('uses power of two choices over peak EWMA by default', () => {
    const lb = new LoadBalancer();
    expect(lb.strategy).toBeInstanceOf(P2CPeakEwma);
    expect(lb.name).toBe('p2c-peak-ewma');
    expect(lb.usesFeedback).toBe(true);
    expect(new LoadBalancer({ strategy: 'round-robin' }).usesFeedback).toBe(false);
  });

  it('replaces its rules all or nothing', () => {
    const lb = new LoadBalancer({ strategy: 'round-robin', rules: { default: { to: { version: 'v2' } } } });
    expect(() => lb.update({ default: { split: [{ subset: { version: 'v1' }, weight: -5 }] } })).toThrow(
      'invalid configuration "default.split[0].weight"',
    );
    expect(lb.select(all, call())?.id).toBe('c');
    lb.update({ default: { to: { version: 'v1' } } });
    expect(lb.rules).toEqual({ default: { to: { version: 'v1' } } });
    expect(['a', 'b']).toContain(lb.select(all, call())?.id);
  });

  it('keeps its table when rules pushed as JSON are invalid, naming the field', () => {
    const lb = new LoadBalancer({ strategy: 'round-robin', rules: { default: { to: { version: 'v2' } } } });
    const pushed = JSON.stringify({
      routes: [{ match: { path: { prefix: '/users' } }, to: { version: 'v1' } }],
      default: {
        split: [
          { subset: { version: 'v1' }, weight: 90 },
          { subset: { version: 'v2' }, wieght: 10 },
        ],
      },
    });
    let field = '';
    try {
      lb.update(parseRoutingRules(pushed));
    } catch (error) {
      if (ConfigError.is(error)) field = error.field;
    }
    expect(field).toBe('default.split[1].wieght');
    expect(lb.select(all, call({ path: '/users/1' }))?.id).toBe('c');
  });

  it('refuses a bad strategy name or panic threshold, naming the field', () => {
    expect(() => new LoadBalancer({ strategy: 'fastest' as 'random' })).toThrow('invalid configuration "strategy"');
    expect(() => new LoadBalancer({ panicThreshold: 2 })).toThrow('invalid configuration "panicThreshold"');
    expect(() => new LoadBalancer({ rules: { routes: [{}] } })).toThrow(ConfigError);
  });
});

/** A context with its instance chosen, as the instance selection stage leaves it. */
function at(instance: ServiceInstance): CallContext {
  const context = new CallContext();
  context.instance = instance;
  return context;
}

describe('strategy feedback', () => {
  const reply = (instance: ServiceInstance, status: number): Reply => ({ status, headers: {}, body: null, instance });

  it('counts an attempt in flight until it answers, fails or throws', async () => {
    const lo = new LeastOutstanding();
    const feedback = strategyFeedback(lo);
    let release: (status: number) => void = () => {};
    const pending = feedback(
      call(),
      at(a),
      (_c, ctx) =>
        new Promise<Reply>(
          (resolve) => (release = (status) => resolve(reply(ctx.instance as ServiceInstance, status))),
        ),
    );
    expect(lo.outstanding(a)).toBe(1);
    release(503);
    expect((await pending).status).toBe(503);
    expect(lo.outstanding(a)).toBe(0);
    await expect(feedback(call(), at(a), () => Promise.reject(new Error('reset')))).rejects.toThrow('reset');
    expect(lo.outstanding(a)).toBe(0);
  });

  it('reports the duration on the clock, and failure for a throw or a 5xx', async () => {
    const clock = new ManualClock();
    const seen: Array<[string, number, boolean]> = [];
    const spy = new (class extends RoundRobin {
      override get usesFeedback(): boolean {
        return true;
      }
      override attemptEnded(i: ServiceInstance, ms: number, failed: boolean): void {
        seen.push([i.id, ms, failed]);
      }
    })();
    const feedback = strategyFeedback(spy, clock);
    const slow = (status: number) => async (_c: Call, ctx: CallContext) => {
      await sleep(clock, 40);
      return reply(ctx.instance as ServiceInstance, status);
    };
    const first = feedback(call(), at(a), slow(200));
    await clock.advanceAsync(40);
    await first;
    const second = feedback(call(), at(b), slow(500));
    await clock.advanceAsync(40);
    await second;
    await feedback(call(), at(c), async () => reply(c, 404));
    await expect(feedback(call(), at(c), () => Promise.reject(new Error('refused')))).rejects.toThrow();
    expect(seen).toEqual([
      ['a', 40, false],
      ['b', 40, true],
      ['c', 0, false],
      ['c', 0, true],
    ]);
  });

  it('passes attempts straight through for a strategy that reads no feedback', async () => {
    const feedback = strategyFeedback(new RoundRobin());
    await expect(
      feedback(call(), at(a), async (_c, ctx) => reply(ctx.instance as ServiceInstance, 200)),
    ).resolves.toMatchObject({
      status: 200,
    });
  });

  it('lets a load balancer steer concurrent calls away from a 10x slower instance', async () => {
    const clock = new ManualClock();
    const lb = new LoadBalancer({ clock, random: seeded(31) });
    const latency: Record<string, number> = { a: 5, b: 5, c: 50 };
    const send = compose([lb.feedback], async (_c, ctx) => {
      const chosen = ctx.instance as ServiceInstance;
      await sleep(clock, latency[chosen.id] ?? 0);
      return reply(chosen, 200);
    });
    const served: Record<string, number> = {};
    const worker = async (): Promise<void> => {
      for (let i = 0; i < 100; i++) {
        const chosen = lb.select(all, call());
        if (chosen === undefined) throw new Error('no instance');
        served[chosen.id] = (served[chosen.id] ?? 0) + 1;
        await send(call(), at(chosen));
      }
    };
    const workers = Promise.all(Array.from({ length: 8 }, worker));
    for (let step = 0; step < 2_000 && Object.values(served).reduce((x, y) => x + y, 0) < 800; step++) {
      await clock.advanceAsync(1);
    }
    await clock.advanceAsync(100);
    await workers;
    // Round robin would send a third (267 calls) to c.
    expect(served.c ?? 0).toBeLessThan(40);
  });
});
