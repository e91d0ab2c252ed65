import {
  CallContext,
  ConnectionError,
  filterStage,
  ManualClock,
  Stack,
  Telemetry,
  type TelemetryEvent,
  NoInstancesError,
  TrellisError,
  type Call,
  type Reply,
  type ServiceInstance,
} from '@trellis/core';
import {
  CircuitBreakerRegistry,
  CircuitOpenError,
  instanceCircuitBreaker,
  isTargetError,
  serviceCircuitBreaker,
} from '@trellis/resilience';
import { adapt, composeStages, instance, type CallLike } from '../fixtures.js';

type Attempt = CallLike & { readonly instance: ServiceInstance };

let clock: ManualClock;
let registry: CircuitBreakerRegistry;

const [a, b] = [instance('users-1'), instance('users-2')];
const call: Call = { service: 'users', method: 'GET', path: '/users/1', headers: {} };
const attemptOn = (target: ServiceInstance, extra: Partial<Attempt> = {}): Attempt => ({
  ...call,
  instance: target,
  ...extra,
});
const reply = (status: number, target: ServiceInstance = a): Reply => ({
  status,
  headers: {},
  body: null,
  instance: target,
});

beforeEach(() => {
  clock = new ManualClock(0);
  registry = new CircuitBreakerRegistry({ minimumCalls: 4, failureRateThreshold: 0.5, resetTimeoutMs: 1_000, clock });
});

afterEach(async () => {
  await registry.close();
});

describe('instanceCircuitBreaker', () => {
  it('counts 5xx replies and connection errors as failures, 4xx as successes', async () => {
    const filter = adapt(instanceCircuitBreaker(registry));
    await filter(attemptOn(a), async () => reply(404));
    await filter(attemptOn(a), async () => reply(200));
    await filter(attemptOn(a), async () => reply(503));
    await expect(
      filter(attemptOn(a), async () => {
        throw new ConnectionError('users', 'users-1', false, new Error('ECONNREFUSED'));
      }),
    ).rejects.toBeInstanceOf(ConnectionError);
    expect(registry.get('users', 'users-1').snapshot()).toMatchObject({ calls: 4, failures: 2, state: 'open' });
  });

  it('returns the failing reply as it is, without throwing', async () => {
    const filter = adapt(instanceCircuitBreaker(registry));
    const answer = await filter(attemptOn(a), async () => reply(500));
    expect(answer.status).toBe(500);
  });

  it('refuses an attempt on an open instance without sending it, with a retryable error naming the instance', async () => {
    const filter = adapt(instanceCircuitBreaker(registry));
    for (let i = 0; i < 4; i++) await filter(attemptOn(a), async () => reply(502));
    let sent = 0;
    const refused = await filter(attemptOn(a), async () => {
      sent++;
      return reply(200);
    }).catch((e: unknown) => e);
    expect(sent).toBe(0);
    expect(refused).toBeInstanceOf(CircuitOpenError);
    expect(refused).toMatchObject({ code: 'CIRCUIT_OPEN', service: 'users', instance: 'users-1', retryable: true });
    // The other instance has its own breaker.
    await expect(filter(attemptOn(b), async () => reply(200, b))).resolves.toMatchObject({ status: 200 });
  });

  it('ignores errors raised locally, and calls the caller cancelled', async () => {
    const filter = adapt(instanceCircuitBreaker(registry));
    const limited = new TrellisError('RATE_LIMITED', 'limited', { retryable: true });
    for (let i = 0; i < 5; i++) {
      await expect(
        filter(attemptOn(a), async () => {
          throw limited;
        }),
      ).rejects.toBe(limited);
    }
    const controller = new AbortController();
    controller.abort();
    await expect(
      filter(attemptOn(a, { signal: controller.signal }), async () => {
        throw new ConnectionError('users', 'users-1', true, new Error('aborted'));
      }),
    ).rejects.toBeInstanceOf(ConnectionError);
    expect(registry.get('users', 'users-1').snapshot()).toMatchObject({ calls: 0, state: 'closed' });
  });

  it('gives the probe back when its outcome is ignored, so that another probe can go', async () => {
    const filter = adapt(instanceCircuitBreaker(registry));
    for (let i = 0; i < 4; i++) await filter(attemptOn(a), async () => reply(500));
    clock.advance(1_000);
    const controller = new AbortController();
    await expect(
      filter(attemptOn(a, { signal: controller.signal }), async () => {
        controller.abort();
        throw controller.signal.reason;
      }),
    ).rejects.toBeDefined();
    expect(registry.isEjected(a)).toBe(false);
    await filter(attemptOn(a), async () => reply(200));
    expect(registry.get('users', 'users-1').state).toBe('closed');
  });

  it('lets only one probe through while half-open, and closes on its success', async () => {
    const filter = adapt(instanceCircuitBreaker(registry));
    for (let i = 0; i < 4; i++) await filter(attemptOn(a), async () => reply(500));
    clock.advance(1_000);
    let finishProbe: (r: Reply) => void = () => undefined;
    const probe = filter(attemptOn(a), () => new Promise<Reply>((resolve) => (finishProbe = resolve)));
    let sent = 0;
    await expect(
      filter(attemptOn(a), async () => {
        sent++;
        return reply(200);
      }),
    ).rejects.toBeInstanceOf(CircuitOpenError);
    expect(sent).toBe(0);
    finishProbe(reply(200));
    await probe;
    expect(registry.get('users', 'users-1').state).toBe('closed');
  });

  it('counts slow successes as failures, timed with the injected clock', async () => {
    const slow = new CircuitBreakerRegistry({ minimumCalls: 2, slowCallMs: 100, clock });
    try {
      const filter = adapt(instanceCircuitBreaker(slow));
      await filter(attemptOn(a), async () => {
        clock.advance(99);
        return reply(200);
      });
      expect(slow.get('users', 'users-1').snapshot()).toMatchObject({ calls: 1, failures: 0 });
      const answer = await filter(attemptOn(a), async () => {
        clock.advance(100);
        return reply(200);
      });
      expect(answer.status).toBe(200); // the caller still gets the slow reply
      expect(slow.get('users', 'users-1').snapshot()).toMatchObject({ calls: 2, failures: 1, state: 'open' });
    } finally {
      await slow.close();
    }
  });

  it('takes its own idea of failure', async () => {
    const filter = adapt(
      instanceCircuitBreaker(registry, {
        isFailureReply: (r) => r.status === 429 || r.status >= 500,
        isFailureError: (e) => isTargetError(e) && !NoInstancesError.is(e),
      }),
    );
    await filter(attemptOn(a), async () => reply(429));
    await expect(
      filter(attemptOn(a), async () => {
        throw new NoInstancesError('users');
      }),
    ).rejects.toBeInstanceOf(NoInstancesError);
    expect(registry.get('users', 'users-1').snapshot()).toMatchObject({ calls: 1, failures: 1 });
  });

  it('gives the permission back when a failure predicate throws', async () => {
    const filter = adapt(
      instanceCircuitBreaker(registry, {
        isFailureReply: () => {
          throw new Error('bad predicate');
        },
      }),
    );
    for (let i = 0; i < 4; i++) await filter(attemptOn(a), async () => reply(500)).catch(() => undefined);
    const breaker = registry.get('users', 'users-1');
    breaker.onFailure(); // not through the filter: the predicate counts nothing
    expect(breaker.state).toBe('closed');
  });
});

describe('serviceCircuitBreaker', () => {
  it('keeps one breaker per service and refuses with a non-retryable error when it is open', async () => {
    const filter = adapt(serviceCircuitBreaker(registry));
    for (let i = 0; i < 4; i++) {
      await expect(
        filter(call, async () => {
          throw new NoInstancesError('users');
        }),
      ).rejects.toBeInstanceOf(NoInstancesError);
    }
    const refused = await filter(call, async () => reply(200)).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'CIRCUIT_OPEN', service: 'users', instance: undefined, retryable: false });
    await expect(filter({ ...call, service: 'mail' }, async () => reply(200))).resolves.toMatchObject({ status: 200 });
    expect(registry.size).toBe(2);
  });
});

describe('outlier ejection through InstanceHealth', () => {
  it('moves traffic off a failing instance and back once its probe succeeds', async () => {
    const healthy = new Map([
      [a.id, true],
      [b.id, true],
    ]);
    let turn = 0;
    // What load balancing does with InstanceHealth: skip ejected instances, unless all are.
    const pick = (): ServiceInstance => {
      const all = [a, b];
      const candidates = all.filter((i) => !registry.isEjected(i));
      const from = candidates.length > 0 ? candidates : all;
      return from[turn++ % from.length] as ServiceInstance;
    };
    const send = composeStages([instanceCircuitBreaker(registry)], async (attempt: CallLike) =>
      reply(healthy.get(attempt.instance?.id ?? '') === true ? 200 : 503, attempt.instance),
    );
    const served = async (calls: number): Promise<string[]> => {
      const ids: string[] = [];
      for (let i = 0; i < calls; i++) ids.push((await send(attemptOn(pick()))).instance.id);
      return ids;
    };

    healthy.set(a.id, false);
    await served(8); // users-1 fails 4 of them and opens
    expect(registry.isEjected(a)).toBe(true);
    expect(new Set(await served(10))).toEqual(new Set(['users-2']));

    healthy.set(a.id, true);
    clock.advance(1_000); // half-open: the next pick may probe users-1
    expect(registry.isEjected(a)).toBe(false);
    const after = await served(10);
    expect(after.filter((id) => id === 'users-1').length).toBe(5);
    expect(registry.get('users', a.id).state).toBe('closed');
  });
});

describe('the breaker stage on the stack', () => {
  it("runs a registry made without a clock on the stack's clock, and reports every state, isolated too, to its telemetry", async () => {
    const own = new CircuitBreakerRegistry({ minimumCalls: 2, resetTimeoutMs: 1_000 });
    const stackClock = new ManualClock(0);
    const telemetry = new Telemetry();
    const seen: string[] = [];
    telemetry.onEvent((e: TelemetryEvent) => {
      if (e.type === 'circuit-state-changed') seen.push(`${e.instance ?? e.service} ${e.from}->${e.to}`);
    });
    const stack = new Stack([instanceCircuitBreaker(own), filterStage('send', async (): Promise<Reply> => reply(503))]);
    const send = stack.build({ service: 'users', clock: stackClock, random: () => 0.5, telemetry });
    const attempt = async (): Promise<unknown> => {
      const context = new CallContext();
      context.instance = a;
      return send(call, context).catch((e: unknown) => e);
    };
    try {
      await attempt();
      await attempt();
      const breaker = own.get('users', a.id);
      expect(breaker.clock).toBe(stackClock);
      expect(breaker.state).toBe('open');
      stackClock.advance(1_000); // no call: the stack's clock alone moves it on
      expect(breaker.state).toBe('half-open');
      const isolation = breaker.isolate();
      expect(await attempt()).toMatchObject({ code: 'CIRCUIT_OPEN', reason: 'isolated', instance: a.id });
      isolation.dispose();
      expect(seen).toEqual([
        'users-1 closed->open',
        'users-1 open->half-open',
        'users-1 half-open->isolated',
        'users-1 isolated->closed',
      ]);
    } finally {
      stack.close();
      await own.close();
    }
  });
});
