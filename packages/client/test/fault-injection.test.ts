import {
  CallContext,
  ConnectionError,
  ManualClock,
  type Call,
  type FaultInjected,
  type Reply,
  type ServiceInstance,
} from '@trellis/core';
import { FaultInjector, parseFaultRules, ServiceClient, type FaultRule } from '@trellis/client';
import { Discovery, MemoryRegistry } from '@trellis/registry';
import { startServer, type TestServer } from './http-fixtures.js';
import { refusal } from '../../core/test/config-refusal.js';

/** A seeded generator of numbers in [0, 1) (mulberry32): tests never use Math.random. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const instance: ServiceInstance = {
  id: 'users-1',
  service: 'users',
  address: '127.0.0.1',
  port: 1,
  tags: [],
  meta: { weight: 1, labels: {} },
};
/** A call with what its context carries (the instance, the signal), as these tests write it. */
interface Attempt extends Call {
  readonly instance: ServiceInstance;
  readonly signal?: AbortSignal;
}

/** Runs the injector's filter on an attempt, as the stack would with the instance chosen. */
function inject(faults: FaultInjector, a: Attempt, next: (a: Attempt) => Promise<Reply>): Promise<Reply> {
  const { instance: chosen, signal, ...call } = a;
  const context = new CallContext(signal === undefined ? {} : { signal });
  context.instance = chosen;
  return faults.filter(call, context, (c, x) => next({ ...c, instance: x.instance as ServiceInstance }));
}

const attempt = (overrides: Partial<Attempt> = {}): Attempt => ({
  service: 'users',
  method: 'GET',
  path: '/users/1',
  headers: {},
  instance,
  ...overrides,
});
const ok = async (a: Attempt): Promise<Reply> => ({ status: 200, headers: {}, body: 'real', instance: a.instance });

describe('FaultInjector', () => {
  it('delays a matched call by the given time on the clock, then sends it', async () => {
    const clock = new ManualClock();
    const faults = new FaultInjector({ clock, rules: [{ delay: { share: 1, ms: 500 } }] });
    let done = false;
    const reply = inject(faults, attempt(), ok).then((r) => {
      done = true;
      return r;
    });
    await clock.advanceAsync(499);
    expect(done).toBe(false);
    await clock.advanceAsync(1);
    expect(done).toBe(true);
    expect((await reply).body).toBe('real');
  });

  it('aborts a matched call with the given status, without sending it', async () => {
    const faults = new FaultInjector({ rules: [{ abort: { share: 1, status: 503 } }] });
    let sent = 0;
    const reply = await inject(faults, attempt(), (a) => {
      sent++;
      return ok(a);
    });
    expect(sent).toBe(0);
    expect(reply).toMatchObject({ status: 503, headers: { 'x-trellis-fault': 'abort' }, instance });
  });

  it('aborts with a connection error: refused was never sent, reset may have been', async () => {
    const refused = new FaultInjector({ rules: [{ abort: { share: 1, connection: 'refused' } }] });
    const reset = new FaultInjector({ rules: [{ abort: { share: 1, connection: 'reset' } }] });
    const thrown = async (f: FaultInjector): Promise<ConnectionError> => {
      try {
        await inject(f, attempt(), ok);
      } catch (error) {
        if (ConnectionError.is(error)) return error;
        throw error;
      }
      throw new Error('no error');
    };
    const a = await thrown(refused);
    expect([a.sent, a.retryable, a.instance, a.service]).toEqual([false, true, 'users-1', 'users']);
    expect(a.message).toContain('fault injected: connection refused');
    expect((await thrown(reset)).sent).toBe(true);
  });

  it('hits the configured share of calls: 10% within 1.5 points over 10 000 seeded calls', async () => {
    const faults = new FaultInjector({ random: seeded(41), rules: [{ abort: { share: 0.1, status: 500 } }] });
    let aborted = 0;
    for (let i = 0; i < 10_000; i++) if ((await inject(faults, attempt(), ok)).status === 500) aborted++;
    expect(Math.abs(aborted / 10_000 - 0.1)).toBeLessThan(0.015);
  });

  it('delays, then aborts, each with its own share', async () => {
    const clock = new ManualClock();
    const seen: FaultInjected[] = [];
    const faults = new FaultInjector({
      clock,
      random: seeded(42),
      rules: [{ name: 'both', delay: { share: 1, ms: 20 }, abort: { share: 1, status: 502 } }],
    });
    faults.onFaultInjected((e) => seen.push(e));
    const reply = inject(faults, attempt(), ok);
    await clock.advanceAsync(20);
    expect((await reply).status).toBe(502);
    expect(seen).toEqual([
      { type: 'fault-injected', kind: 'delay', rule: 'both', service: 'users', instance: 'users-1' },
      { type: 'fault-injected', kind: 'abort', rule: 'both', service: 'users', instance: 'users-1' },
    ]);
  });

  it("touches only calls its match selects, with the routing rules' match", async () => {
    const faults = new FaultInjector({
      caller: 'forum',
      rules: [
        {
          match: {
            service: 'users',
            caller: 'forum',
            method: 'POST',
            path: { prefix: '/users' },
            headers: { 'x-test': 'chaos' },
          },
          abort: { share: 1, status: 503 },
        },
      ],
    });
    const hit = attempt({ method: 'POST', headers: { 'x-test': 'chaos' } });
    expect((await inject(faults, hit, ok)).status).toBe(503);
    expect((await inject(faults, { ...hit, service: 'mail' }, ok)).status).toBe(200);
    expect((await inject(faults, { ...hit, method: 'GET' }, ok)).status).toBe(200);
    expect((await inject(faults, { ...hit, path: '/mail' }, ok)).status).toBe(200);
    expect((await inject(faults, { ...hit, headers: {} }, ok)).status).toBe(200);
    const otherCaller = new FaultInjector({ caller: 'chat', rules: faults.rules });
    expect((await inject(otherCaller, hit, ok)).status).toBe(200);
  });

  it('applies the first matching rule only', async () => {
    const faults = new FaultInjector({
      rules: [
        { match: { path: { prefix: '/users' } }, abort: { share: 1, status: 503 } },
        { abort: { share: 1, status: 500 } },
      ],
    });
    expect((await inject(faults, attempt(), ok)).status).toBe(503);
    expect((await inject(faults, attempt({ path: '/mail' }), ok)).status).toBe(500);
  });

  it("rejects with the signal's reason when the call is cancelled during a delay", async () => {
    const clock = new ManualClock();
    const faults = new FaultInjector({ clock, rules: [{ delay: { share: 1, ms: 1_000 } }] });
    const controller = new AbortController();
    const reply = inject(faults, attempt({ signal: controller.signal }), ok);
    controller.abort(new Error('caller gave up'));
    await expect(reply).rejects.toThrow('caller gave up');
    expect(clock.pendingTimers).toBe(0);
  });

  it('passes every call through with no rules', async () => {
    expect((await inject(new FaultInjector(), attempt(), ok)).body).toBe('real');
  });

  it('replaces its rules whole, or refuses them naming the field and keeps the old ones', async () => {
    const rules: FaultRule[] = [{ abort: { share: 1, status: 503 } }];
    const faults = new FaultInjector({ rules });
    expect(
      refusal(() => faults.update([{ abort: { share: 0, status: 500 } }, { abort: { share: 1.5, status: 500 } }]))
        .field,
    ).toBe('faults[1].abort.share');
    expect(faults.rules).toEqual(rules);
    expect((await inject(faults, attempt(), ok)).status).toBe(503);
    faults.update([]);
    expect((await inject(faults, attempt(), ok)).status).toBe(200);
  });

  it.each([
    ['a rule with neither delay nor abort', [{ match: {} }], 'faults[0]'],
    ['a negative delay', [{ delay: { share: 0.05, ms: -1 } }], 'faults[0].delay.ms'],
    ['a share that is text', [{ delay: { share: '0.05', ms: 1 } }], 'faults[0].delay.share'],
    ['a share given in percent', [{ abort: { share: 5, status: 503 } }], 'faults[0].abort.share'],
    ['a rule that is not an object', ['abort'], 'faults[0]'],
    ['rules that are not a list', { abort: { share: 1, status: 503 } }, 'faults'],
    ['an unknown key in a delay', [{ delay: { share: 0.5, ms: 1, percent: 50 } }], 'faults[0].delay.percent'],
    ['a success status', [{ abort: { share: 0.05, status: 200 } }], 'faults[0].abort.status'],
    ['both status and connection', [{ abort: { share: 0.05, status: 503, connection: 'refused' } }], 'faults[0].abort'],
    ['an unknown connection error', [{ abort: { share: 0.05, connection: 'timeout' } }], 'faults[0].abort.connection'],
    ['an unknown key', [{ abort: { share: 0.05, status: 503 }, dealy: {} }], 'faults[0].dealy'],
    [
      'a bad match',
      [{ match: { path: { regex: '(' } }, abort: { share: 0.05, status: 503 } }],
      'faults[0].match.path.regex',
    ],
  ])('refuses %s, naming the field', (_what, rules, field) => {
    expect(refusal(() => new FaultInjector({ rules: rules as FaultRule[] })).field).toBe(field);
    expect(refusal(() => parseFaultRules(JSON.stringify(rules))).field).toBe(field);
  });

  it('says what is wrong with the field it names', () => {
    expect(() => new FaultInjector({ rules: [{ abort: { share: 1.5, status: 503 } }] })).toThrow(
      'invalid configuration "faults[0].abort.share": must be between 0 and 1',
    );
    expect(() => new FaultInjector({ rules: [{ abort: { share: 1, status: 503 }, dealy: {} } as FaultRule] })).toThrow(
      'invalid configuration "faults[0].dealy": unknown key',
    );
  });

  it('parses rules from JSON text as a control plane stores them', () => {
    const text = '[{ "name": "mail", "match": { "service": "mail" }, "abort": { "share": 0.05, "status": 503 } }]';
    expect(parseFaultRules(text)).toEqual([
      { name: 'mail', match: { service: 'mail' }, abort: { share: 0.05, status: 503 } },
    ]);
    expect(refusal(() => parseFaultRules('[{')).field).toBe('faults');
  });
});

describe('FaultInjector in a ServiceClient over real HTTP', () => {
  let server: TestServer;
  let registry: MemoryRegistry;
  let discovery: Discovery;

  beforeEach(async () => {
    server = await startServer('users-1');
    registry = new MemoryRegistry();
    await registry.register({ instance: server.instance, ttlMs: 60_000, deregisterAfterMs: 60_000 });
    discovery = new Discovery(registry);
  });
  afterEach(async () => {
    await discovery.close();
    await registry.close();
    await server.close();
  });

  it('answers aborted calls with the injected status, and lets the others reach the server', async () => {
    const faults = new FaultInjector({
      rules: [{ match: { headers: { 'x-chaos': 'on' } }, abort: { share: 1, status: 503 } }],
    });
    const client = new ServiceClient({ service: 'users', discovery, faults });
    try {
      const aborted = await client.request({ path: '/users/1', headers: { 'x-chaos': 'on' } });
      expect(aborted.status).toBe(503);
      expect(server.requests).toEqual([]);
      const passed = await client.request({ path: '/users/2' });
      expect(passed.status).toBe(200);
      expect(server.requests.map((r) => r.url)).toEqual(['/users/2']);
    } finally {
      await client.close();
    }
  });

  it('holds a delayed call until the clock has moved by the delay', async () => {
    const clock = new ManualClock();
    const faults = new FaultInjector({ clock, rules: [{ delay: { share: 1, ms: 2_000 } }] });
    const client = new ServiceClient({ service: 'users', discovery, faults });
    try {
      const reply = client.get<{ servedBy: string }>('/users/1');
      await clock.advanceAsync(1_999);
      expect(server.requests).toEqual([]);
      await clock.advanceAsync(1);
      expect((await reply).servedBy).toBe('users-1');
      expect(server.requests).toHaveLength(1);
    } finally {
      await client.close();
    }
  });
});
