import { ConfigError, ManualClock } from '@trellis/core';
import {
  createStrategy,
  LeastOutstanding,
  P2CPeakEwma,
  RandomStrategy,
  strategyNames,
  WeightedRoundRobin,
  ZoneAware,
  ConsistentHash,
  RoundRobin,
  LoadBalancer,
} from '@trellis/loadbalancer';
import { call, instance, seeded, tally } from './fixtures.js';

describe('RandomStrategy', () => {
  it('spreads calls evenly, within 3% of an equal share over 30 000 seeded picks', () => {
    const list = [instance('a'), instance('b'), instance('c')];
    const strategy = new RandomStrategy({ random: seeded(7) });
    const counts = tally(() => strategy.select(list, call()), 30_000);
    for (const id of ['a', 'b', 'c']) expect(Math.abs((counts[id] ?? 0) / 30_000 - 1 / 3)).toBeLessThan(0.03);
  });

  it('picks nothing from an empty list', () => {
    expect(new RandomStrategy({ random: seeded(1) }).select([], call())).toBeUndefined();
  });
});

describe('WeightedRoundRobin', () => {
  it("interleaves a heavy instance's calls as nginx does (weights 5, 1, 1)", () => {
    const list = [instance('a', { weight: 5 }), instance('b', { weight: 1 }), instance('c', { weight: 1 })];
    const wrr = new WeightedRoundRobin();
    const order = Array.from({ length: 14 }, () => wrr.select(list, call())?.id).join('');
    expect(order).toBe('aabacaa'.repeat(2));
  });

  it('honours weights exactly over whole cycles', () => {
    const list = [1, 2, 3, 4].map((w) => instance(`w${w}`, { weight: w }));
    const wrr = new WeightedRoundRobin();
    expect(tally(() => wrr.select(list, call()), 1_000)).toEqual({ w1: 100, w2: 200, w3: 300, w4: 400 });
  });

  it('sends nothing to a weight of 0 while another instance has a weight', () => {
    const list = [instance('drained', { weight: 0 }), instance('a'), instance('b')];
    const wrr = new WeightedRoundRobin();
    expect(tally(() => wrr.select(list, call()), 100)).toEqual({ a: 50, b: 50 });
  });

  it('takes instances in turn when every weight is 0', () => {
    const list = [instance('a', { weight: 0 }), instance('b', { weight: 0 })];
    const wrr = new WeightedRoundRobin();
    expect(tally(() => wrr.select(list, call()), 10)).toEqual({ a: 5, b: 5 });
  });

  it('picks nothing from an empty list', () => {
    expect(new WeightedRoundRobin().select([], call())).toBeUndefined();
  });
});

describe('LeastOutstanding', () => {
  it('sends each call to the instance with the fewest calls in flight', () => {
    const [a, b, c] = [instance('a'), instance('b'), instance('c')];
    const lo = new LeastOutstanding();
    lo.attemptStarted(a);
    lo.attemptStarted(a);
    lo.attemptStarted(b);
    expect(lo.select([a, b, c], call())).toBe(c);
    lo.attemptStarted(c);
    lo.attemptStarted(c);
    expect(lo.select([a, b, c], call())).toBe(b);
    lo.attemptEnded(a, 5, false);
    lo.attemptEnded(a, 5, false);
    expect(lo.select([a, b, c], call())).toBe(a);
    expect(lo.outstanding(a)).toBe(0);
  });

  it('takes idle instances in turn rather than always the first', () => {
    const list = [instance('a'), instance('b'), instance('c')];
    const lo = new LeastOutstanding();
    expect(tally(() => lo.select(list, call()), 30)).toEqual({ a: 10, b: 10, c: 10 });
  });

  it('keeps its counts right across many sweeps of its per-instance table', () => {
    const list = [instance('a'), instance('b'), instance('c')];
    const lo = new LeastOutstanding();
    const b = list[1]!;
    lo.attemptStarted(b); // b stays busy throughout
    let toB = 0;
    for (let i = 0; i < 20_000; i++) {
      const chosen = lo.select(list, call())!;
      if (chosen === b) toB++;
      lo.attemptStarted(chosen);
      lo.attemptEnded(chosen, 1, false);
    }
    expect(toB).toBe(0);
    expect(lo.outstanding(b)).toBe(1);
    lo.attemptEnded(b, 1, false);
    expect(tally(() => lo.select(list, call()), 3)).toEqual({ a: 1, b: 1, c: 1 });
  });

  it('never counts below zero when an end arrives without its start', () => {
    const a = instance('a');
    const lo = new LeastOutstanding();
    lo.attemptEnded(a, 1, false);
    lo.attemptStarted(a);
    expect(lo.outstanding(a)).toBe(1);
  });
});

describe('P2CPeakEwma', () => {
  function warm(p2c: P2CPeakEwma, clock: ManualClock, latencies: Record<string, number>, rounds: number): void {
    for (let r = 0; r < rounds; r++) {
      for (const [id, ms] of Object.entries(latencies)) {
        p2c.attemptStarted(instance(id));
        p2c.attemptEnded(instance(id), ms, false);
      }
      clock.advance(10);
    }
  }

  it('prefers the fast instance: the 10x slower one gets under 1% of 10 000 calls', () => {
    const clock = new ManualClock();
    const p2c = new P2CPeakEwma({ clock, random: seeded(3) });
    const list = [instance('fast1'), instance('fast2'), instance('slow')];
    warm(p2c, clock, { fast1: 5, fast2: 5, slow: 50 }, 3);
    const counts = tally(() => p2c.select(list, call()), 10_000);
    expect(counts.slow ?? 0).toBeLessThan(100);
    expect(Math.abs((counts.fast1 ?? 0) - (counts.fast2 ?? 0))).toBeLessThan(400);
  });

  it('weighs calls in flight: a fast instance with many outstanding loses to a slower idle one', () => {
    const clock = new ManualClock();
    const p2c = new P2CPeakEwma({ clock, random: seeded(4) });
    const [fast, slow] = [instance('fast'), instance('slow')];
    warm(p2c, clock, { fast: 5, slow: 20 }, 1);
    expect(p2c.select([fast, slow], call())).toBe(fast);
    for (let i = 0; i < 4; i++) p2c.attemptStarted(fast); // cost 5 × 5 = 25 > 20 × 1
    expect(p2c.select([fast, slow], call())).toBe(slow);
  });

  it('reacts to a latency peak at once, and trusts the instance again as the peak decays', () => {
    const clock = new ManualClock();
    const p2c = new P2CPeakEwma({ clock, random: seeded(5), decayMs: 1_000 });
    const [a, b] = [instance('a'), instance('b')];
    warm(p2c, clock, { a: 10, b: 12 }, 1);
    expect(p2c.select([a, b], call())).toBe(a);
    p2c.attemptStarted(a);
    p2c.attemptEnded(a, 200, false);
    expect(p2c.estimate(a)).toBe(200);
    expect(p2c.select([a, b], call())).toBe(b);
    // Idle, both estimates decay alike (by e^-t/τ); a fresh observation of a fast answer
    // after 5 τ outweighs the old peak.
    clock.advance(5_000);
    expect(p2c.estimate(a)).toBeCloseTo(200 * Math.exp(-5), 6);
    p2c.attemptStarted(a);
    p2c.attemptEnded(a, 10, false);
    p2c.attemptStarted(b);
    p2c.attemptEnded(b, 12, false);
    expect(p2c.select([a, b], call())).toBe(a);
  });

  it('probes a new instance with one call at a time until it has answered', () => {
    const clock = new ManualClock();
    const p2c = new P2CPeakEwma({ clock, random: seeded(6) });
    const [old, fresh] = [instance('old'), instance('fresh')];
    warm(p2c, clock, { old: 10 }, 1);
    expect(p2c.select([old, fresh], call())).toBe(fresh); // no latency known: cost 0
    p2c.attemptStarted(fresh);
    expect(tally(() => p2c.select([old, fresh], call()), 20)).toEqual({ old: 20 });
    p2c.attemptEnded(fresh, 3, false);
    expect(p2c.select([old, fresh], call())).toBe(fresh);
  });

  it('never lowers an estimate for a failed attempt, however fast it failed', () => {
    const clock = new ManualClock();
    const p2c = new P2CPeakEwma({ clock, random: seeded(8) });
    const [failing, idle, succeeding] = [instance('failing'), instance('idle'), instance('succeeding')];
    warm(p2c, clock, { failing: 40, idle: 40, succeeding: 40 }, 1);
    clock.advance(1_000);
    p2c.attemptStarted(failing);
    p2c.attemptEnded(failing, 1, true);
    p2c.attemptStarted(succeeding);
    p2c.attemptEnded(succeeding, 1, false);
    // A fast failure counts as slow as the estimate was; a fast success is blended in by the
    // time since the last observation (Finagle's weighting), and the idle twin only decayed.
    expect(p2c.estimate(failing)).toBe(40);
    expect(p2c.estimate(succeeding)).toBeLessThan(37);
    expect(p2c.estimate(idle)).toBeCloseTo(40 * Math.exp(-1_010 / 10_000), 9);
  });

  it('picks two distinct instances, so either of two is possible, and handles 0 or 1', () => {
    const p2c = new P2CPeakEwma({ clock: new ManualClock(), random: seeded(9) });
    const list = [instance('a'), instance('b')];
    expect(Object.keys(tally(() => p2c.select(list, call()), 50)).sort()).toEqual(['a', 'b']);
    expect(p2c.select([], call())).toBeUndefined();
    expect(p2c.select([instance('solo')], call())?.id).toBe('solo');
  });

  it('refuses a decay that is not a positive number', () => {
    expect(() => new P2CPeakEwma({ decayMs: 0 })).toThrow(ConfigError);
    expect(() => new P2CPeakEwma({ decayMs: Number.NaN })).toThrow('invalid configuration "decayMs"');
  });

  it('forgets instances that left, keeping its memory bounded under churn', () => {
    const p2c = new P2CPeakEwma({ clock: new ManualClock(), random: seeded(10) });
    for (let generation = 0; generation < 50; generation++) {
      const list = [instance(`g${generation}-a`), instance(`g${generation}-b`)];
      for (let i = 0; i < 1_000; i++) p2c.select(list, call());
    }
    // 100 ids were used; only those of the last few thousand picks remain.
    const counts = tally(() => p2c.select([instance('x'), instance('y')], call()), 10_000);
    expect(Object.keys(counts).sort()).toEqual(['x', 'y']);
    expect(p2c.estimate(instance('g0-a'))).toBe(0);
  });
});

describe('ZoneAware', () => {
  const local = [instance('a1', { zone: 'a' }), instance('a2', { zone: 'a' })];
  const remote = [instance('b1', { zone: 'b' }), instance('c1', { zone: 'c' })];

  it("keeps calls in the caller's zone while it has instances", () => {
    const za = new ZoneAware({ zone: 'a', inner: new RoundRobin() });
    expect(tally(() => za.select([...remote, ...local], call()), 100)).toEqual({ a1: 50, a2: 50 });
  });

  it('falls back to the other zones when its own has none', () => {
    const za = new ZoneAware({ zone: 'a', inner: new RoundRobin() });
    expect(tally(() => za.select(remote, call()), 100)).toEqual({ b1: 50, c1: 50 });
  });

  it('uses every zone when its own has fewer than minLocal instances', () => {
    const za = new ZoneAware({ zone: 'a', inner: new RoundRobin(), minLocal: 2 });
    const list = [local[0]!, ...remote];
    expect(tally(() => za.select(list, call()), 90)).toEqual({ a1: 30, b1: 30, c1: 30 });
  });

  it('passes feedback to the inner strategy', () => {
    const inner = new LeastOutstanding();
    const za = new ZoneAware({ zone: 'a', inner });
    expect(za.usesFeedback).toBe(true);
    za.attemptStarted(local[0]!);
    expect(inner.outstanding(local[0]!)).toBe(1);
    expect(za.select(local, call())?.id).toBe('a2');
  });

  it('refuses a missing zone or a minLocal below 1', () => {
    expect(() => new ZoneAware({ zone: '', inner: new RoundRobin() })).toThrow('invalid configuration "zone"');
    expect(() => new ZoneAware({ zone: 'a', inner: new RoundRobin(), minLocal: 0 })).toThrow(ConfigError);
  });
});

describe('createStrategy', () => {
  it('builds every built-in strategy by name', () => {
    const expected = {
      'round-robin': RoundRobin,
      random: RandomStrategy,
      'weighted-round-robin': WeightedRoundRobin,
      'least-outstanding': LeastOutstanding,
      'p2c-peak-ewma': P2CPeakEwma,
      'consistent-hash': ConsistentHash,
      'zone-aware': ZoneAware,
    };
    expect([...strategyNames].sort()).toEqual(Object.keys(expected).sort());
    for (const [name, type] of Object.entries(expected)) {
      const strategy = createStrategy(name, { zone: 'a' });
      expect(strategy).toBeInstanceOf(type);
      expect(strategy.name).toBe(name);
    }
  });

  it('refuses zone-aware without a zone, naming the field', () => {
    expect(() => createStrategy('zone-aware')).toThrow('invalid configuration "zone"');
    expect(() => createStrategy('zone-aware', { zone: 'a', inner: 'nope' as 'random' })).toThrow(
      'invalid configuration "inner"',
    );
  });

  it('passes the seeded random to the strategies that draw', () => {
    const list = [instance('a'), instance('b'), instance('c')];
    const first = createStrategy('random', { random: seeded(11) });
    const second = createStrategy('random', { random: seeded(11) });
    const picks = (s: typeof first): string => Array.from({ length: 20 }, () => s.select(list, call())?.id).join(',');
    expect(picks(first)).toBe(picks(second));
  });
});

describe('describeInstance', () => {
  it("reports P2C's score, latency estimate and calls in flight, through a load balancer and zone-aware", () => {
    const clock = new ManualClock();
    const a = instance('a');
    const b = instance('b');
    const p2c = new P2CPeakEwma({ clock, random: seeded(3) });
    const lb = new LoadBalancer({ strategy: new ZoneAware({ zone: 'z', inner: p2c }) });
    expect(lb.describeInstance(a)).toBeUndefined();
    p2c.attemptStarted(a);
    // Probed, not yet answered: Finagle's penalty, so that it gets one call at a time.
    expect(lb.describeInstance(a)).toEqual({ score: 2 ** 47 + 1, latencyMs: 0, outstanding: 1 });
    clock.advance(40);
    p2c.attemptEnded(a, 40, false);
    p2c.attemptStarted(a);
    p2c.attemptStarted(b);
    expect(lb.describeInstance(a)).toEqual({ score: 80, latencyMs: 40, outstanding: 1 });
    p2c.attemptEnded(a, 40, false);
    expect(lb.describeInstance(a)).toEqual({ score: 40, latencyMs: 40, outstanding: 0 });
  });

  it('reports least-outstanding counts, and nothing for strategies that keep no per-instance state', () => {
    const a = instance('a');
    const least = new LeastOutstanding();
    least.attemptStarted(a);
    least.attemptStarted(a);
    expect(least.describeInstance(a)).toEqual({ score: 2, outstanding: 2 });
    const rr = new RoundRobin();
    rr.select([a], call());
    expect(rr.describeInstance(a)).toBeUndefined();
  });
});
