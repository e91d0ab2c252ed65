import {
  AttributeKey,
  CallContext,
  ConfigError,
  filterStage,
  ManualClock,
  Stack,
  Telemetry,
  type Call,
  type Filter,
  type Reply,
  type Stage,
} from '@trellis/core';

const instance = {
  id: 'users-1',
  service: 'users',
  address: '127.0.0.1',
  port: 1,
  tags: [],
  meta: { weight: 1, labels: {} },
};
const call: Call = { service: 'users', method: 'GET', path: '/users/1', headers: {} };

/** A stage that records its name on the way in, with an optional role and level. */
function recording(name: string, log: string[], extra: Partial<Stage> = {}): Stage {
  const filter: Filter = (c, context, next) => {
    log.push(name);
    return next(c, context);
  };
  return { name, ...extra, make: () => filter };
}

function transport(log: string[]): Stage {
  return {
    name: 'transport',
    role: 'transport',
    make: () => async (): Promise<Reply> => {
      log.push('transport');
      return { status: 200, headers: {}, body: null, instance };
    },
  };
}

const env = () => ({ service: 'users', clock: new ManualClock(), random: () => 0.5, telemetry: new Telemetry() });

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return ConfigError.is(error) ? error.field : undefined;
  }
  return undefined;
}

describe('Stack', () => {
  it('runs stages outermost first, and takes inserts before and after a named stage, a replace and a remove', async () => {
    const log: string[] = [];
    const stack = new Stack([recording('deadline', log), recording('retry', log, { role: 'retry' }), transport(log)]);
    stack
      .insertBefore('retry', recording('audit', log))
      .insertAfter('retry', recording('stamp', log))
      .replace('deadline', recording('my-deadline', log))
      .remove('stamp');
    expect(stack.names).toEqual(['my-deadline', 'audit', 'retry', 'transport']);
    await stack.build(env())(call, new CallContext());
    expect(log).toEqual(['my-deadline', 'audit', 'retry', 'transport']);
  });

  it('refuses a second retry, breaker or timeout with a ConfigError naming the stage that has the role', () => {
    const log: string[] = [];
    const stack = new Stack([
      recording('retry', log, { role: 'retry' }),
      recording('breaker', log, { role: 'breaker' }),
      recording('attempt-timeout', log, { role: 'timeout' }),
      transport(log),
    ]);
    expect(fieldOf(() => stack.insertBefore('retry', recording('my-retry', log, { role: 'retry' })))).toBe(
      'stack.retry',
    );
    expect(fieldOf(() => stack.insertAfter('breaker', recording('b2', log, { role: 'breaker' })))).toBe(
      'stack.breaker',
    );
    expect(fieldOf(() => stack.insertAfter('breaker', recording('t2', log, { role: 'timeout' })))).toBe(
      'stack.attempt-timeout',
    );
    // Replacing the one there is, or adding one after removing it, is fine.
    stack.replace('retry', recording('my-retry', log, { role: 'retry' }));
    stack.remove('attempt-timeout').insertAfter('breaker', recording('t2', log, { role: 'timeout' }));
    expect(stack.names).toEqual(['my-retry', 'breaker', 't2', 'transport']);
  });

  it('refuses an edit naming no stage, a name used twice, a per-attempt stage before "select", and edits after build', () => {
    const log: string[] = [];
    const stack = new Stack([recording('select', log, { role: 'select' }), transport(log)]);
    expect(fieldOf(() => stack.insertBefore('nope', recording('x', log)))).toBe('stack.nope');
    expect(fieldOf(() => stack.insertBefore('select', recording('transport', log)))).toBe('stack.transport');
    stack.insertBefore('select', recording('needs-instance', log, { level: 'attempt' }));
    expect(fieldOf(() => stack.build(env()))).toBe('stack.needs-instance');
    const ok = new Stack([transport(log)]);
    ok.build(env());
    expect(fieldOf(() => ok.insertBefore('transport', recording('late', log)))).toBe('stack');
  });

  it('hands every stage its name, the clock, the random source and the one telemetry sink, and leaves out stages that make nothing', async () => {
    const seen: string[] = [];
    const given = env();
    const probe = (name: string): Stage => ({
      name,
      make(e) {
        seen.push(
          `${e.stage}:${e.service}:${e.clock === given.clock}:${e.telemetry === given.telemetry}:${e.random()}`,
        );
        return name === 'off' ? undefined : (c, context, next) => next(c, context);
      },
    });
    const log: string[] = [];
    await new Stack([
      probe('a'),
      probe('off'),
      filterStage('plain', (c, ctx, next) => next(c, ctx)),
      transport(log),
    ]).build(given)(call, new CallContext());
    expect(seen).toEqual(['a:users:true:true:0.5', 'off:users:true:true:0.5']);
    expect(log).toEqual(['transport']);
  });

  it('undoes what stages asked for when it closes', () => {
    const undone: string[] = [];
    const stack = new Stack([
      {
        name: 'subscriber',
        make(e) {
          e.onClose(() => undone.push('subscription'));
          return undefined;
        },
      },
    ]);
    stack.build(env());
    stack.close();
    stack.close();
    expect(undone).toEqual(['subscription']);
  });
});

describe('CallContext', () => {
  it('keeps the signal beside the call, so a filter that spreads the call below a timeout still cancels it', async () => {
    const controller = new AbortController();
    const root = new CallContext({ signal: controller.signal });
    const timeout = root.forkCancellable();
    // A stage below copies the call; the signal is not on the call, so nothing is lost.
    const copied: Call = { ...call, headers: { ...call.headers, 'x-caller': 'forum' } };
    expect(copied).not.toHaveProperty('signal');
    const signal = timeout.signal as AbortSignal;
    timeout.cancel(new Error('timed out'));
    expect(signal.aborted).toBe(true);
    expect(controller.signal.aborted).toBe(false);
  });

  it('makes a cancellable child signal only when read, following the parent, and stops following once detached', () => {
    const controller = new AbortController();
    const root = new CallContext({ signal: controller.signal });
    const child = root.forkCancellable();
    const detached = root.forkCancellable();
    detached.detach();
    expect(child.aborted).toBe(false);
    const signal = child.signal as AbortSignal;
    controller.abort(new Error('caller gave up'));
    expect(signal.aborted).toBe(true);
    expect((signal.reason as Error).message).toBe('caller gave up');
    expect(detached.aborted).toBe(false);
  });

  it('gives children the deadline, attempt, instance and attributes of their parent, and keeps their own changes to themselves', () => {
    const tenant = new AttributeKey<string>('tenant');
    const root = new CallContext({ deadline: 500 });
    root.set(tenant, 'acme');
    const child = root.fork();
    child.attempt = 2;
    child.avoid = new Set(['users-1']);
    expect(child.deadline).toBe(500);
    expect(child.get(tenant)).toBe('acme');
    expect(root.attempt).toBe(1);
    expect(root.avoid).toBeUndefined();
    expect(root.remainingMs(200)).toBe(300);
  });
});
