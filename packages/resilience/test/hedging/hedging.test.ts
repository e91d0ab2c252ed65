import { CallContext, compose, ManualClock, type Call, type Reply, type ServiceInstance } from '@trellis/core';
import { Hedging, RetryBudget, type HedgingOptions } from '@trellis/resilience';
import { configField, get, instances } from '../fixtures.js';

interface Sent {
  readonly instance: string;
  readonly signal: AbortSignal | undefined;
  answer(status?: number): void;
  fail(error: unknown): void;
}

/**
 * Stands for ServiceClient's instance selection: picks the first instance not avoided, writes
 * it into the attempt's context, and hands on to a downstream that answers when told.
 */
function setUp(options: HedgingOptions, clock = new ManualClock()) {
  const hedging = new Hedging({ clock, ...options });
  const sent: Sent[] = [];
  const chain = compose([hedging.filter], async (_call, context) => {
    const instance = instances.find((i) => !context.avoid?.has(i.id)) as ServiceInstance;
    context.instance = instance;
    return new Promise<Reply>((resolve, reject) => {
      sent.push({
        instance: instance.id,
        signal: context.signal,
        answer: (status = 200) => resolve({ status, headers: {}, body: instance.id, instance }),
        fail: reject,
      });
    });
  });
  const send = (call: Call): Promise<Reply> => chain(call, new CallContext());
  return { clock, hedging, sent, send };
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('Hedging', () => {
  it('sends a second attempt to another instance after the delay; the first answer wins and the other is cancelled', async () => {
    const { clock, sent, send, hedging } = setUp({ delayMs: 50 });
    const hedges: unknown[] = [];
    hedging.onHedgeSent((e) => hedges.push(e));
    const result = send(get);
    await flush();
    expect(sent.map((s) => s.instance)).toEqual(['users-1']);
    clock.advance(49);
    await flush();
    expect(sent).toHaveLength(1);
    clock.advance(1);
    await flush();
    expect(sent.map((s) => s.instance)).toEqual(['users-1', 'users-2']);
    sent[1]?.answer();
    expect((await result).body).toBe('users-2');
    expect(sent[0]?.signal?.aborted).toBe(true);
    expect(sent[1]?.signal?.aborted).toBe(false);
    expect(hedges).toEqual([{ type: 'hedge-sent', service: 'users', firstInstance: 'users-1' }]);
  });

  it('sends nothing more when the first attempt answers in time', async () => {
    const { clock, sent, send } = setUp({ delayMs: 50 });
    const result = send(get);
    await flush();
    sent[0]?.answer();
    expect((await result).body).toBe('users-1');
    clock.advance(1_000);
    await flush();
    expect(sent).toHaveLength(1);
  });

  it('never hedges a call that may not run twice', async () => {
    const { clock, sent, send } = setUp({ delayMs: 50 });
    void send({ ...get, method: 'POST' });
    await flush();
    clock.advance(1_000);
    await flush();
    expect(sent).toHaveLength(1);
  });

  it('hedges only within its budget', async () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ clock, ttlMs: 1_000, minRetriesPerSecond: 1, retryShare: 0 });
    const { sent, send } = setUp({ delayMs: 50, budget }, clock);
    void send(get);
    void send(get);
    await flush();
    clock.advance(50);
    await flush();
    expect(sent.map((s) => s.instance)).toEqual(['users-1', 'users-1', 'users-2']); // one hedge: the floor
  });

  it('fails at once when the first attempt fails before the delay, and waits for a hedge already sent', async () => {
    const a = setUp({ delayMs: 50 });
    const early = a.send(get).catch((e: unknown) => e);
    await flush();
    a.sent[0]?.fail(new Error('refused'));
    expect(await early).toEqual(new Error('refused'));
    a.clock.advance(100);
    await flush();
    expect(a.sent).toHaveLength(1);

    const b = setUp({ delayMs: 50 });
    const late = b.send(get);
    await flush();
    b.clock.advance(50);
    await flush();
    b.sent[0]?.fail(new Error('reset'));
    await flush();
    b.sent[1]?.answer();
    expect((await late).body).toBe('users-2');
  });

  it('learns its delay from the percentile of recent latencies, and does not hedge before it has enough', async () => {
    const { clock, hedging, sent, send } = setUp({ percentile: 0.9, minSamples: 10 });
    expect(hedging.delayMs).toBeUndefined();
    for (let i = 0; i < 10; i++) {
      const result = send(get);
      await flush();
      clock.advance(i < 9 ? 10 : 100); // nine calls of 10 ms, one of 100 ms
      sent.at(-1)?.answer();
      await result;
    }
    expect(sent).toHaveLength(10); // no hedge while learning
    clock.advance(1_000); // past the recompute interval
    const delay = hedging.delayMs ?? 0;
    expect(delay).toBeGreaterThanOrEqual(10);
    expect(delay).toBeLessThan(12);
    void send(get);
    await flush();
    clock.advance(delay);
    await flush();
    expect(sent).toHaveLength(12);
  });

  it('rejects options out of range, naming the field', () => {
    expect(configField(() => new Hedging({ delayMs: 0 }))).toBe('hedging.delayMs');
    expect(configField(() => new Hedging({ percentile: 1 }))).toBe('hedging.percentile');
    expect(configField(() => new Hedging({ minSamples: 0 }))).toBe('hedging.minSamples');
    expect(configField(() => new Hedging({ windowMs: -1 }))).toBe('hedging.windowMs');
  });

  it('hedges any idempotent async function with execute(): the first to succeed wins, the other is aborted', async () => {
    const clock = new ManualClock();
    const hedging = new Hedging({ clock, delayMs: 50, service: 'search-index' });
    const signals: AbortSignal[] = [];
    const answers: Array<(v: string) => void> = [];
    const result = hedging.execute(
      (signal) =>
        new Promise<string>((resolve) => {
          signals.push(signal);
          answers.push(resolve);
        }),
    );
    await flush();
    clock.advance(50);
    await flush();
    expect(signals).toHaveLength(2);
    answers[1]?.('second');
    expect(await result).toBe('second');
    expect(signals[0]?.aborted).toBe(true);
    expect(signals[1]?.aborted).toBe(false);
  });
});
