import type { Call, ServiceInstance } from '@trellis/core';
import { ConfigError } from '@trellis/core';
import { createStrategy, RoundRobin, type Strategy } from '@trellis/loadbalancer';

const call: Call = { service: 'users', method: 'GET', path: '/', headers: {} };
const instance = (id: string): ServiceInstance => ({
  id,
  service: 'users',
  address: '127.0.0.1',
  port: 1,
  tags: [],
  meta: { weight: 1, labels: {} },
});
const [a, b, c] = [instance('a'), instance('b'), instance('c')];

function pick(strategy: Strategy, instances: ServiceInstance[], times: number): string[] {
  return Array.from({ length: times }, () => strategy.select(instances, call)?.id ?? 'none');
}

describe('RoundRobin', () => {
  it('takes the instances in turn', () => {
    expect(pick(new RoundRobin(), [a, b, c], 7)).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a']);
  });

  it('spreads calls evenly', () => {
    const counts = new Map<string, number>();
    for (const id of pick(new RoundRobin(), [a, b, c], 300)) counts.set(id, (counts.get(id) ?? 0) + 1);
    expect(Object.fromEntries(counts)).toEqual({ a: 100, b: 100, c: 100 });
  });

  it('picks nothing from an empty list', () => {
    expect(new RoundRobin().select([], call)).toBeUndefined();
  });

  it('carries on when the list shrinks or grows', () => {
    const rr = new RoundRobin();
    expect(pick(rr, [a, b, c], 3)).toEqual(['a', 'b', 'c']);
    expect(pick(rr, [a, b], 3)).toEqual(['a', 'b', 'a']);
    expect(pick(rr, [a, b, c], 3)).toEqual(['b', 'c', 'a']);
  });
});

describe('createStrategy', () => {
  it('builds a strategy by name', () => {
    const strategy = createStrategy('round-robin');
    expect(strategy).toBeInstanceOf(RoundRobin);
    expect(strategy.name).toBe('round-robin');
  });

  it('gives every call its own state', () => {
    expect(createStrategy('round-robin')).not.toBe(createStrategy('round-robin'));
  });

  it('refuses an unknown name with an error naming the field and the choices', () => {
    expect(() => createStrategy('fastest')).toThrow(ConfigError);
    expect(() => createStrategy('fastest')).toThrow(
      'invalid configuration "strategy": unknown strategy "fastest"; known: round-robin, random, weighted-round-robin, least-outstanding, p2c-peak-ewma, consistent-hash, zone-aware',
    );
    expect(() => createStrategy('toString')).toThrow(ConfigError);
  });
});
