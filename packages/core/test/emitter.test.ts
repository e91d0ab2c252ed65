import { Emitter, toDisposable } from '@trellis/core';

describe('Emitter', () => {
  it('delivers each value to every listener in subscription order', () => {
    const emitter = new Emitter<number>();
    const seen: string[] = [];
    emitter.event((v) => seen.push(`a${v}`));
    emitter.event((v) => seen.push(`b${v}`));
    emitter.emit(1);
    emitter.emit(2);
    expect(seen).toEqual(['a1', 'b1', 'a2', 'b2']);
  });

  it('stops delivering after the subscription is disposed', () => {
    const emitter = new Emitter<string>();
    const seen: string[] = [];
    const subscription = emitter.event((v) => seen.push(v));
    emitter.emit('before');
    subscription.dispose();
    subscription.dispose();
    emitter.emit('after');
    expect(seen).toEqual(['before']);
    expect(emitter.hasListeners).toBe(false);
  });

  it('keeps two subscriptions of the same function independent', () => {
    const emitter = new Emitter<number>();
    const seen: number[] = [];
    const listener = (v: number): void => void seen.push(v);
    const first = emitter.event(listener);
    emitter.event(listener);
    first.dispose();
    emitter.emit(7);
    expect(seen).toEqual([7]);
  });

  it('reports a throwing listener without starving the others', () => {
    const errors: unknown[] = [];
    const emitter = new Emitter<number>((error) => errors.push(error));
    const seen: number[] = [];
    emitter.event(() => {
      throw new Error('listener bug');
    });
    emitter.event((v) => seen.push(v));
    emitter.emit(3);
    expect(seen).toEqual([3]);
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe('listener bug');
  });

  it('by default logs what a listener throws and never rethrows it, so a bug in a listener cannot crash the process', async () => {
    const logged: unknown[][] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => logged.push(args);
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => {
      uncaught.push(error);
    };
    process.on('uncaughtException', onUncaught);
    try {
      const emitter = new Emitter<number>();
      const seen: number[] = [];
      emitter.event(() => {
        throw new Error('listener bug');
      });
      emitter.event((v) => seen.push(v));
      expect(() => emitter.emit(1)).not.toThrow();
      await new Promise((resolve) => setImmediate(resolve));
      expect(seen).toEqual([1]);
      expect(logged).toHaveLength(1);
      expect((logged[0]?.[1] as Error).message).toBe('listener bug');
      expect(uncaught).toEqual([]);
    } finally {
      console.error = original;
      process.off('uncaughtException', onUncaught);
    }
  });

  it('forgets every listener on clear', () => {
    const emitter = new Emitter<number>();
    const seen: number[] = [];
    emitter.event((v) => seen.push(v));
    emitter.clear();
    emitter.emit(1);
    expect(seen).toEqual([]);
  });
});

describe('toDisposable', () => {
  it('runs its action once however often it is disposed', () => {
    let runs = 0;
    const d = toDisposable(() => runs++);
    d.dispose();
    d.dispose();
    expect(runs).toBe(1);
  });
});
