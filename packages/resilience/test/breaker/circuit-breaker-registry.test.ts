import { ClosedError, ConfigError, ManualClock } from '@trellis/core';
import type { CircuitStateChanged } from '@trellis/core';
import { CircuitBreakerRegistry, type CircuitBreaker } from '@trellis/resilience';
import { instance } from '../fixtures.js';

let clock: ManualClock;
let registry: CircuitBreakerRegistry;

const [a, b] = [instance('users-1'), instance('users-2')];

beforeEach(() => {
  clock = new ManualClock(0);
  registry = new CircuitBreakerRegistry({ minimumCalls: 2, resetTimeoutMs: 1_000, idleTimeoutMs: 60_000, clock });
});

afterEach(async () => {
  await registry.close();
});

function trip(breaker: CircuitBreaker): void {
  for (let i = 0; i < 2; i++) {
    expect(breaker.tryAcquire()).toBe(true);
    breaker.onFailure();
  }
  expect(breaker.state).toBe('open');
}

describe('CircuitBreakerRegistry', () => {
  it('makes a breaker the first time a key is asked for, and returns the same one after', () => {
    expect(registry.size).toBe(0);
    const first = registry.get('users', 'users-1');
    expect(registry.get('users', 'users-1')).toBe(first);
    expect(registry.size).toBe(1);
    expect(first).toMatchObject({ service: 'users', instance: 'users-1' });
    const perService = registry.get('mail');
    expect(perService).toMatchObject({ service: 'mail', instance: undefined });
    expect(registry.find('mail')).toBe(perService);
    expect(registry.find('forum')).toBeUndefined();
    expect(registry.size).toBe(2);
    expect(registry.all()).toEqual([first, perService]);
  });

  it('gives a service its own policy when one is configured', async () => {
    const own = new CircuitBreakerRegistry({ minimumCalls: 2, clock, services: { mail: { minimumCalls: 5 } } });
    try {
      const users = own.get('users');
      const mail = own.get('mail');
      for (let i = 0; i < 2; i++) {
        users.tryAcquire();
        users.onFailure();
        mail.tryAcquire();
        mail.onFailure();
      }
      expect(users.state).toBe('open');
      expect(mail.state).toBe('closed');
    } finally {
      await own.close();
    }
  });

  it('checks every policy when it is made, naming the field', () => {
    expect(() => new CircuitBreakerRegistry({ windowMs: -1 })).toThrow('breaker.windowMs');
    expect(() => new CircuitBreakerRegistry({ services: { mail: { failureRateThreshold: 2 } } })).toThrow(
      'breaker.services.mail.failureRateThreshold',
    );
    expect(() => new CircuitBreakerRegistry({ idleTimeoutMs: 0 })).toThrow(ConfigError);
  });

  it('ejects an instance while its breaker is open, and takes it back once its probe succeeds', () => {
    expect(registry.isEjected(a)).toBe(false); // no breaker yet: healthy
    const breaker = registry.get('users', a.id);
    trip(breaker);
    expect(registry.isEjected(a)).toBe(true);
    expect(registry.isEjected(b)).toBe(false);
    clock.advance(1_000);
    expect(registry.isEjected(a)).toBe(false); // half-open: load balancing may send it the probe
    expect(breaker.tryAcquire()).toBe(true);
    expect(registry.isEjected(a)).toBe(true); // the probe is out: no other call goes there
    breaker.onSuccess();
    expect(registry.isEjected(a)).toBe(false);
    expect(breaker.state).toBe('closed');
  });

  it('keeps an instance ejected when its probe fails', () => {
    const breaker = registry.get('users', a.id);
    trip(breaker);
    clock.advance(1_000);
    breaker.tryAcquire();
    breaker.onFailure();
    expect(registry.isEjected(a)).toBe(true);
    clock.advance(999);
    expect(registry.isEjected(a)).toBe(true);
  });

  it('forgets the instances discovery no longer lists, and stops their timers', () => {
    trip(registry.get('users', 'users-1'));
    trip(registry.get('users', 'users-2'));
    registry.get('users', 'users-3');
    expect(clock.pendingTimers).toBe(2);
    expect(registry.retain(['users-3', 'users-9'])).toBe(2);
    expect(registry.size).toBe(1);
    expect(registry.all().map((breaker) => breaker.instance)).toEqual(['users-3']);
    expect(registry.find('users-1')).toBeUndefined();
    expect(registry.isEjected(a)).toBe(false);
    expect(clock.pendingTimers).toBe(0);
    expect(registry.forget('users-3')).toBe(true);
    expect(registry.forget('users-3')).toBe(false);
    expect(registry.size).toBe(0);
  });

  it('drops breakers idle for idleTimeoutMs when it makes a new one', () => {
    const idle = registry.get('users', 'users-1');
    const busy = registry.get('users', 'users-2');
    clock.advance(59_000);
    busy.tryAcquire();
    busy.onSuccess();
    clock.advance(1_000);
    registry.get('users', 'users-3');
    expect(registry.find('users-1')).toBeUndefined();
    expect(registry.find('users-2')).toBe(busy);
    expect(registry.size).toBe(2);
    expect(idle.tryAcquire()).toBe(true); // a dropped breaker lets its in-flight callers finish
  });

  it('holds a bounded number of breakers under churn of instances', () => {
    for (let round = 0; round < 50; round++) {
      const live = [`i-${round}-a`, `i-${round}-b`, `i-${round}-c`];
      for (const id of live) registry.get('users', id);
      registry.retain(live);
      expect(registry.size).toBe(3);
    }
  });

  it('reports state changes of all its breakers', () => {
    const changes: CircuitStateChanged[] = [];
    registry.onStateChanged((c) => changes.push(c));
    trip(registry.get('users', 'users-1'));
    trip(registry.get('mail'));
    clock.advance(1_000);
    expect(changes.map((c) => `${c.instance ?? c.service} ${c.from}->${c.to}`)).toEqual([
      'users-1 closed->open',
      'mail closed->open',
      'users-1 open->half-open',
      'mail open->half-open',
    ]);
  });

  it('closes every breaker and makes no more once closed', async () => {
    trip(registry.get('users', 'users-1'));
    await registry.close();
    expect(clock.pendingTimers).toBe(0);
    expect(registry.size).toBe(0);
    expect(() => registry.get('users')).toThrow(ClosedError);
  });

  it('saves the state of every breaker and makes a registry that starts from it', async () => {
    trip(registry.get('users', 'users-1'));
    registry.get('users', 'users-2');
    clock.advance(400);
    const saved = registry.toJSON();
    expect(Object.keys(saved)).toEqual(['users-1', 'users-2']);
    expect(saved['users-1']).toMatchObject({ state: 'open', openRemainingMs: 600 });
    const later = new CircuitBreakerRegistry({ minimumCalls: 2, resetTimeoutMs: 1_000, clock, state: saved });
    try {
      expect(later.isEjected(a)).toBe(false); // no breaker made yet
      const restored = later.get('users', 'users-1');
      expect(restored.state).toBe('open');
      expect(later.isEjected(a)).toBe(true);
      clock.advance(600);
      expect(restored.state).toBe('half-open');
      expect(later.get('users', 'users-2').state).toBe('closed');
    } finally {
      await later.close();
    }
    expect(
      () => new CircuitBreakerRegistry({ state: { 'users-1': { ...saved['users-1'], calls: -1 } as never } }),
    ).toThrow('breaker.state.users-1.calls');
  });
});
