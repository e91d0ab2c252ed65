import { ManualClock, sleep, systemClock } from '@trellis/core';

describe('ManualClock', () => {
  it('stands still until advanced', () => {
    const clock = new ManualClock(1_000);
    expect(clock.now()).toBe(1_000);
    clock.advance(250);
    expect(clock.now()).toBe(1_250);
  });

  it('fires timers in due order, each seeing its own due time', () => {
    const clock = new ManualClock();
    const fired: Array<[string, number]> = [];
    clock.setTimer(300, () => fired.push(['c', clock.now()]));
    clock.setTimer(100, () => fired.push(['a', clock.now()]));
    clock.setTimer(200, () => fired.push(['b', clock.now()]));
    clock.advance(250);
    expect(fired).toEqual([
      ['a', 100],
      ['b', 200],
    ]);
    expect(clock.now()).toBe(250);
    clock.advance(50);
    expect(fired.at(-1)).toEqual(['c', 300]);
  });

  it('fires timers due at the same time in the order they were set', () => {
    const clock = new ManualClock();
    const fired: string[] = [];
    for (const name of ['first', 'second', 'third']) clock.setTimer(10, () => fired.push(name));
    clock.advance(10);
    expect(fired).toEqual(['first', 'second', 'third']);
  });

  it('never fires a cancelled timer, and cancelling twice or after firing is harmless', () => {
    const clock = new ManualClock();
    const fired: string[] = [];
    const kept = clock.setTimer(10, () => fired.push('kept'));
    const dropped = clock.setTimer(10, () => fired.push('dropped'));
    dropped.cancel();
    dropped.cancel();
    expect(clock.pendingTimers).toBe(1);
    clock.advance(10);
    kept.cancel();
    expect(fired).toEqual(['kept']);
    expect(clock.pendingTimers).toBe(0);
  });

  it('fires timers scheduled by callbacks when they fall inside the window', () => {
    const clock = new ManualClock();
    const ticks: number[] = [];
    const tick = (): void => {
      ticks.push(clock.now());
      clock.setTimer(100, tick);
    };
    clock.setTimer(100, tick);
    clock.advance(350);
    expect(ticks).toEqual([100, 200, 300]);
    expect(clock.pendingTimers).toBe(1);
  });

  it('treats a negative delay as zero', () => {
    const clock = new ManualClock(50);
    const fired: number[] = [];
    clock.setTimer(-10, () => fired.push(clock.now()));
    clock.advance(0);
    expect(fired).toEqual([50]);
  });

  it('refuses to go backwards', () => {
    expect(() => new ManualClock().advance(-1)).toThrow(RangeError);
  });

  it('stops a callback that re-arms itself with no delay instead of hanging', () => {
    const clock = new ManualClock();
    const spin = (): void => {
      clock.setTimer(0, spin);
    };
    clock.setTimer(0, spin);
    expect(() => clock.advance(1)).toThrow(/too many timers/);
  });

  it('lets awaited work run between timers with advanceAsync', async () => {
    const clock = new ManualClock();
    const beats: number[] = [];
    const beat = async (): Promise<void> => {
      await Promise.resolve();
      beats.push(clock.now());
      clock.setTimer(100, () => void beat());
    };
    clock.setTimer(100, () => void beat());
    await clock.advanceAsync(300);
    expect(beats).toEqual([100, 200, 300]);
  });
});

describe('sleep', () => {
  it('resolves when the clock reaches the delay', async () => {
    const clock = new ManualClock();
    let done = false;
    const slept = sleep(clock, 100).then(() => {
      done = true;
    });
    clock.advance(99);
    await Promise.resolve();
    expect(done).toBe(false);
    clock.advance(1);
    await slept;
    expect(done).toBe(true);
  });

  it('rejects with the abort reason and cancels its timer', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const slept = sleep(clock, 100, controller.signal);
    controller.abort(new Error('shutting down'));
    await expect(slept).rejects.toThrow('shutting down');
    expect(clock.pendingTimers).toBe(0);
  });

  it('rejects at once when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort(new Error('already'));
    await expect(sleep(new ManualClock(), 100, controller.signal)).rejects.toThrow('already');
  });
});

describe('systemClock', () => {
  it('is monotonic and fires real timers', async () => {
    const before = systemClock.now();
    await sleep(systemClock, 5);
    expect(systemClock.now()).toBeGreaterThanOrEqual(before + 4);
  });

  it('never fires a timer before its delay by its own now()', async () => {
    // Node's timers run on the loop's millisecond clock, which may trail performance.now() by
    // up to a millisecond: about 1 timer in 50 fired early before the clock checked; 500 tries.
    let earliest = Infinity;
    for (let i = 0; i < 500; i++) {
      const setAt = systemClock.now();
      const firedAt = await new Promise<number>((resolve) => systemClock.setTimer(1, () => resolve(systemClock.now())));
      earliest = Math.min(earliest, firedAt - setAt);
    }
    expect(earliest).toBeGreaterThanOrEqual(1);
  });

  it('waits out delays beyond setTimeout’s 24.8-day limit instead of firing at once', async () => {
    let fired = false;
    const timer = systemClock.setTimer(30 * 24 * 3_600_000, () => (fired = true));
    await sleep(systemClock, 5);
    timer.cancel();
    expect(fired).toBe(false);
  });

  it('does not fire a cancelled timer', async () => {
    let fired = false;
    systemClock.setTimer(1, () => (fired = true)).cancel();
    await sleep(systemClock, 10);
    expect(fired).toBe(false);
  });
});
