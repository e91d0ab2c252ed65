import { getEventListeners } from 'node:events';
import { CallContext } from '@trellis/core';

describe('CallContext cancellation', () => {
  it('gives no light signal when nothing can cancel the call', () => {
    expect(new CallContext().fork().lightSignal()).toBeUndefined();
  });

  it("calls a light signal's listener once when its cancellable context is cancelled", () => {
    const attempt = new CallContext().fork().forkCancellable();
    const signal = attempt.lightSignal();
    const heard: unknown[] = [];
    signal?.addEventListener('abort', () => heard.push(signal.reason));
    const reason = new Error('attempt timed out');
    attempt.cancel(reason);
    attempt.cancel(new Error('again'));
    expect(heard).toEqual([reason]);
    expect(signal?.aborted).toBe(true);
  });

  it("reaches a grandchild's listener when an outer cancellable context is cancelled", () => {
    const call = new CallContext().forkCancellable();
    const attempt = call.fork().forkCancellable();
    const heard: unknown[] = [];
    attempt.lightSignal()?.addEventListener('abort', () => heard.push(attempt.reason));
    call.cancel('deadline passed');
    expect(heard).toEqual(['deadline passed']);
    expect(attempt.aborted).toBe(true);
  });

  it("follows the caller's AbortSignal, and leaves no listener on it once detached", () => {
    const caller = new AbortController();
    const attempt = new CallContext({ signal: caller.signal }).forkCancellable();
    const signal = attempt.lightSignal();
    const onAbort = (): void => {};
    signal?.addEventListener('abort', onAbort);
    expect(getEventListeners(caller.signal, 'abort')).toHaveLength(1);
    signal?.removeEventListener('abort', onAbort);
    attempt.detach();
    expect(getEventListeners(caller.signal, 'abort')).toHaveLength(0);
    caller.abort(new Error('caller gave up'));
    expect(attempt.aborted).toBe(false);
  });

  it("aborts the caller's cancellation into a light signal's listener", () => {
    const caller = new AbortController();
    const attempt = new CallContext({ signal: caller.signal }).fork().forkCancellable();
    const heard: unknown[] = [];
    attempt.lightSignal()?.addEventListener('abort', () => heard.push(attempt.reason));
    const reason = new Error('caller gave up');
    caller.abort(reason);
    expect(heard).toEqual([reason]);
  });

  it('stops calling a listener removed from the light signal', () => {
    const attempt = new CallContext().forkCancellable();
    const signal = attempt.lightSignal();
    let calls = 0;
    const listener = (): void => {
      calls++;
    };
    signal?.addEventListener('abort', listener);
    signal?.removeEventListener('abort', listener);
    attempt.cancel('stop');
    expect(calls).toBe(0);
  });

  it('makes a real AbortSignal on demand that follows the same cancellation', () => {
    const call = new CallContext().forkCancellable();
    const attempt = call.fork().forkCancellable();
    const signal = attempt.signal;
    expect(signal?.aborted).toBe(false);
    call.cancel('deadline passed');
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBe('deadline passed');
  });

  it('hands an already cancelled context a signal that is aborted from the start', () => {
    const attempt = new CallContext().forkCancellable();
    attempt.cancel('too late');
    expect(attempt.signal?.aborted).toBe(true);
    expect(attempt.lightSignal()?.aborted).toBe(true);
  });
});
