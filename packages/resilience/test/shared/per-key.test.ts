import { ManualClock } from '@trellis/core';
import { ConcurrencyLimit, PerKey, TokenBucket } from '@trellis/resilience';
import { configField } from '../fixtures.js';

describe('PerKey', () => {
  it('keeps one limiter per key, so that one key exhausting its limit leaves the others alone', () => {
    const clock = new ManualClock();
    const perUser = new PerKey({ clock, create: () => new TokenBucket({ ratePerSecond: 1, burst: 2, clock }) });
    expect(perUser.get('ada').tryAcquire().granted).toBe(true);
    expect(perUser.get('ada').tryAcquire().granted).toBe(true);
    expect(perUser.get('ada').tryAcquire().granted).toBe(false);
    expect(perUser.get('grace').tryAcquire().granted).toBe(true);
    expect(perUser.get('ada')).toBe(perUser.get('ada'));
    expect(perUser.size).toBe(2);
  });

  it('drops keys idle for idleAfterMs whose limiter is idle, and keeps busy ones', () => {
    const clock = new ManualClock();
    const perRoute = new PerKey({
      clock,
      idleAfterMs: 1_000,
      create: () => new ConcurrencyLimit({ maxConcurrent: 1 }),
    });
    perRoute.get('/a');
    perRoute.get('/b').tryAcquire();
    clock.advance(1_000);
    perRoute.get('/c');
    expect(perRoute.size).toBe(2); // '/a' dropped, '/b' holds a slot, '/c' new
    const b = perRoute.get('/b');
    expect(b.active).toBe(1);
    b.release();
    clock.advance(1_000);
    perRoute.get('/c');
    expect(perRoute.size).toBe(1);
  });

  it('never holds more than maxKeys, dropping an idle key before a busy one', () => {
    const clock = new ManualClock();
    const perCaller = new PerKey({ clock, maxKeys: 3, create: () => new ConcurrencyLimit({ maxConcurrent: 1 }) });
    perCaller.get('busy').tryAcquire();
    const idle = perCaller.get('idle');
    perCaller.get('third');
    perCaller.get('fourth');
    expect(perCaller.size).toBe(3);
    expect(perCaller.get('busy').active).toBe(1);
    expect(perCaller.get('idle')).not.toBe(idle);
    for (let i = 0; i < 1_000; i++) perCaller.get(`flood-${i}`);
    expect(perCaller.size).toBe(3);
  });

  it('rejects bad options naming the field', () => {
    const create = (): TokenBucket => new TokenBucket({ ratePerSecond: 1 });
    expect(configField(() => new PerKey({ create, maxKeys: 0 }))).toBe('maxKeys');
    expect(configField(() => new PerKey({ create, idleAfterMs: 0 }))).toBe('idleAfterMs');
  });
});
