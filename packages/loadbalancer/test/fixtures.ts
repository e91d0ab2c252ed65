import type { Call, ServiceInstance } from '@trellis/core';

/** A seeded generator of numbers in [0, 1) (mulberry32): tests never use Math.random. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface InstanceSpec {
  readonly version?: string;
  readonly zone?: string;
  readonly weight?: number;
  readonly tags?: readonly string[];
  readonly labels?: Readonly<Record<string, string>>;
}

export function instance(id: string, spec: InstanceSpec = {}): ServiceInstance {
  return {
    id,
    service: 'users',
    address: '127.0.0.1',
    port: 1,
    tags: spec.tags ?? [],
    meta: {
      ...(spec.version === undefined ? {} : { version: spec.version }),
      ...(spec.zone === undefined ? {} : { zone: spec.zone }),
      weight: spec.weight ?? 1,
      labels: spec.labels ?? {},
    },
  };
}

export function call(overrides: Partial<Call> = {}): Call {
  return { service: 'users', method: 'GET', path: '/users/1', headers: {}, ...overrides };
}

/** How many times each id was picked in `times` selections. */
export function tally(pick: () => ServiceInstance | undefined, times: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < times; i++) {
    const id = pick()?.id ?? 'none';
    counts[id] = (counts[id] ?? 0) + 1;
  }
  return counts;
}
