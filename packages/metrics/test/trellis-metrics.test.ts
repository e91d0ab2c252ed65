import { Counter, Histogram, Registry } from 'prom-client';
import { ConfigError, Telemetry, type TelemetryEvent } from '@trellis/core';
import { durationBuckets, TrellisMetrics } from '@trellis/metrics';

type Series = { labels: Record<string, string | number>; value: number; metricName?: string };

async function series(registry: Registry, name: string): Promise<Series[]> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  return (await metric.get()).values as Series[];
}

function attemptEnded(overrides: Partial<Extract<TelemetryEvent, { type: 'attempt-ended' }>>): TelemetryEvent {
  return {
    type: 'attempt-ended',
    service: 'users',
    instance: 'users-1',
    attempt: 1,
    method: 'GET',
    template: '/users/:id',
    outcome: 'success',
    status: 200,
    error: undefined,
    durationMs: 12,
    ...overrides,
  };
}

describe('TrellisMetrics', () => {
  it('turns attempt events into the client histogram, labelled by template, status class and outcome', async () => {
    const telemetry = new Telemetry();
    const metrics = new TrellisMetrics({ processMetrics: false });
    metrics.subscribe(telemetry);
    telemetry.emit(attemptEnded({}));
    telemetry.emit(attemptEnded({ template: undefined, method: 'post', status: 503, outcome: 'failure' }));
    telemetry.emit(attemptEnded({ status: undefined, outcome: 'cancelled', error: 'TIMEOUT', method: 'BREW' }));

    const counts = (await series(metrics.registry, 'http_client_request_duration_seconds'))
      .filter((s) => s.metricName === 'http_client_request_duration_seconds_count')
      .map((s) => s.labels);
    expect(counts).toEqual([
      { service: 'users', method: 'GET', route: '/users/:id', status_class: '2xx', outcome: 'success' },
      { service: 'users', method: 'POST', route: '_unknown', status_class: '5xx', outcome: 'failure' },
      { service: 'users', method: '_OTHER', route: '/users/:id', status_class: 'none', outcome: 'cancelled' },
    ]);
    const sum = (await series(metrics.registry, 'http_client_request_duration_seconds')).find(
      (s) => s.metricName === 'http_client_request_duration_seconds_sum' && s.labels.status_class === '2xx',
    );
    expect(sum?.value).toBeCloseTo(0.012);
  });

  it("writes exactly the text prom-client's own metrics write for the same observations", async () => {
    const telemetry = new Telemetry();
    const metrics = new TrellisMetrics({ processMetrics: false });
    metrics.subscribe(telemetry);
    const durations = [0.4, 3, 12, 12, 75, 260, 1_000, 20_000];
    durations.forEach((durationMs, i) => telemetry.emit(attemptEnded({ durationMs, status: i % 3 === 0 ? 503 : 200 })));
    telemetry.emit(attemptEnded({ service: 'mail', template: 'a "quoted"\\path\nline', durationMs: 5 }));
    const retry = { type: 'retry-scheduled', attempt: 1, instance: undefined, delayMs: 0 } as const;
    telemetry.emit({ ...retry, service: 'users', reason: 'HTTP 503' });
    telemetry.emit({ ...retry, service: 'users', reason: 'HTTP 503' });
    telemetry.emit({ ...retry, service: 'mail', reason: 'TIMEOUT' });

    // The same observations through prom-client's classes, in a registry of their own.
    const reference = new Registry();
    const help = async (name: string): Promise<string> =>
      (await metrics.registry.getSingleMetric(name)?.get())?.help ?? '';
    const histogram = new Histogram({
      name: 'http_client_request_duration_seconds',
      help: await help('http_client_request_duration_seconds'),
      labelNames: ['service', 'method', 'route', 'status_class', 'outcome'],
      buckets: [...durationBuckets],
      registers: [reference],
    });
    const labels = (service: string, route: string, status_class: string) =>
      ({ service, method: 'GET', route, status_class, outcome: 'success' }) as const;
    durations.forEach((durationMs, i) =>
      histogram.observe(labels('users', '/users/:id', i % 3 === 0 ? '5xx' : '2xx'), durationMs / 1000),
    );
    histogram.observe(labels('mail', 'a "quoted"\\path\nline', '2xx'), 0.005);
    const retries = new Counter({
      name: 'trellis_retries_total',
      help: await help('trellis_retries_total'),
      labelNames: ['service', 'reason'],
      registers: [reference],
    });
    retries.inc({ service: 'users', reason: 'HTTP 503' }, 2);
    retries.inc({ service: 'mail', reason: 'TIMEOUT' });

    for (const name of ['http_client_request_duration_seconds', 'trellis_retries_total']) {
      expect(await metrics.registry.getSingleMetricAsString(name)).toBe(await reference.getSingleMetricAsString(name));
    }
    expect((await metrics.registry.getSingleMetric('trellis_retries_total')?.get())?.values).toEqual(
      (await retries.get()).values,
    );
    const json = (await metrics.registry.getSingleMetric('http_client_request_duration_seconds')?.get())?.values;
    expect(json).toEqual(
      (await histogram.get()).values.map(({ value, labels, metricName }) => ({ value, labels, metricName })),
    );
  });

  it('counts retries, refusals, hedges, timeouts, limits, faults, fallbacks and picks', async () => {
    const telemetry = new Telemetry();
    const metrics = new TrellisMetrics({ processMetrics: false });
    metrics.subscribe(telemetry);
    const events: TelemetryEvent[] = [
      { type: 'retry-scheduled', service: 'users', attempt: 1, instance: 'users-1', reason: 'HTTP 503', delayMs: 5 },
      { type: 'retry-scheduled', service: 'users', attempt: 2, instance: 'users-2', reason: 'HTTP 503', delayMs: 5 },
      { type: 'retry-refused', service: 'users', attempt: 1, reason: 'budget' },
      { type: 'hedge-sent', service: 'users', firstInstance: 'users-1' },
      { type: 'timed-out', service: 'users', instance: 'users-1', scope: 'attempt', timeoutMs: 10 },
      { type: 'limit-rejected', service: 'users', limit: 'concurrency', scope: 'users', retryAfterMs: undefined },
      { type: 'fault-injected', service: 'users', instance: 'users-1', kind: 'abort', rule: 'faults[0]' },
      { type: 'fallback-answered', service: 'users', cause: 'CIRCUIT_OPEN' },
      {
        type: 'instance-picked',
        service: 'users',
        instance: 'users-2',
        attempt: 1,
        strategy: 'p2c-peak-ewma',
        route: undefined,
        panic: false,
      },
    ];
    for (const event of events) telemetry.emit(event);

    const text = await metrics.registry.metrics();
    expect(text).toContain('trellis_retries_total{service="users",reason="HTTP 503"} 2');
    expect(text).toContain('trellis_retries_refused_total{service="users",reason="budget"} 1');
    expect(text).toContain('trellis_hedges_total{service="users"} 1');
    expect(text).toContain('trellis_timeouts_total{service="users",scope="attempt"} 1');
    expect(text).toContain('trellis_limit_rejections_total{service="users",limit="concurrency"} 1');
    expect(text).toContain('trellis_faults_injected_total{service="users",kind="abort"} 1');
    expect(text).toContain('trellis_fallbacks_total{service="users",cause="CIRCUIT_OPEN"} 1');
    expect(text).toContain('trellis_instance_picks_total{service="users",target_instance="users-2"} 1');
  });

  it('keeps one breaker gauge per instance showing its current state, and counts transitions', async () => {
    const telemetry = new Telemetry();
    const metrics = new TrellisMetrics({ processMetrics: false });
    metrics.subscribe(telemetry);
    const change = (from: 'closed' | 'open' | 'half-open', to: 'closed' | 'open' | 'half-open'): TelemetryEvent => ({
      type: 'circuit-state-changed',
      service: 'users',
      instance: 'users-1',
      from,
      to,
      calls: 10,
      failureRate: 0.6,
    });
    telemetry.emit(change('closed', 'open'));
    telemetry.emit(change('open', 'half-open'));
    telemetry.emit(change('half-open', 'open'));

    const gauge = await series(metrics.registry, 'trellis_circuit_state');
    expect(Object.fromEntries(gauge.map((s) => [s.labels.state, s.value]))).toEqual({
      closed: 0,
      open: 1,
      'half-open': 0,
      isolated: 0,
    });
    const transitions = await series(metrics.registry, 'trellis_circuit_transitions_total');
    expect(transitions.map((s) => [s.labels.from, s.labels.to, s.value])).toEqual([
      ['closed', 'open', 1],
      ['open', 'half-open', 1],
      ['half-open', 'open', 1],
    ]);
  });

  it('caps the instance label: churning instance ids end as _other past maxLabelValues', async () => {
    const telemetry = new Telemetry();
    const metrics = new TrellisMetrics({ processMetrics: false, maxLabelValues: 50 });
    metrics.subscribe(telemetry);
    for (let i = 0; i < 10_000; i++) {
      telemetry.emit({
        type: 'instance-picked',
        service: 'users',
        instance: `users-${i}`,
        attempt: 1,
        strategy: 'round-robin',
        route: undefined,
        panic: false,
      });
    }
    const picks = await series(metrics.registry, 'trellis_instance_picks_total');
    expect(picks).toHaveLength(51);
    expect(picks.find((s) => s.labels.target_instance === '_other')?.value).toBe(10_000 - 50);
    expect(picks.reduce((total, s) => total + s.value, 0)).toBe(10_000);
  });

  it('stops counting once disposed, and registers process metrics in the registry it is given', async () => {
    const registry = new Registry();
    const telemetry = new Telemetry();
    const metrics = new TrellisMetrics({ registry });
    metrics.subscribe(telemetry);
    expect(telemetry.enabled).toBe(true);
    metrics.dispose();
    expect(telemetry.enabled).toBe(false);
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
    expect(names).toEqual(
      expect.arrayContaining(['http_client_request_duration_seconds', 'nodejs_eventloop_lag_seconds']),
    );
  });

  it('refuses a cap that is not a positive integer, naming the field', () => {
    expect(() => new TrellisMetrics({ maxLabelValues: 0 })).toThrow(ConfigError);
    expect(() => new TrellisMetrics({ maxLabelValues: 0 })).toThrow(/maxLabelValues/);
  });
});

describe('TrellisMetrics and the control plane', () => {
  it('shows the version of the rules each service runs, versions refused, dry-run effects and refused configuration', async () => {
    const telemetry = new Telemetry();
    const metrics = new TrellisMetrics({ processMetrics: false });
    metrics.subscribe(telemetry);
    telemetry.emit({ type: 'rules-applied', service: 'users', version: 7, fields: ['routing'] });
    telemetry.emit({ type: 'rules-applied', service: 'mail', version: 3, fields: [] });
    telemetry.emit({ type: 'rules-applied', service: 'mail', version: undefined, fields: [] });
    telemetry.emit({
      type: 'rules-refused',
      service: 'users',
      version: 8,
      field: 'client.retry',
      problem: 'no retry stage',
    });
    const routed = {
      type: 'dry-run',
      effect: 'route',
      service: 'users',
      version: 9,
      attempt: 1,
      instance: 'users-1',
      live: 'default',
      candidate: 'default',
    } as const;
    telemetry.emit(routed);
    telemetry.emit(routed);
    telemetry.emit({ type: 'dry-run', effect: 'limit', service: 'forum', version: 2, limit: 'rate' });
    telemetry.emit({ type: 'config-refused', key: 'pageSize', source: 'kv config/forum/pageSize', problem: 'too big' });

    const values = async (name: string): Promise<Array<[Record<string, string | number>, number]>> =>
      (await series(metrics.registry, name)).map((s) => [s.labels, s.value]);
    expect(await values('trellis_rules_version')).toEqual([
      [{ service: 'users' }, 7],
      [{ service: 'mail' }, 0],
    ]);
    expect(await values('trellis_rules_refusals_total')).toEqual([[{ service: 'users' }, 1]]);
    expect(await values('trellis_rules_dry_run_total')).toEqual([
      [{ service: 'users', effect: 'route' }, 2],
      [{ service: 'forum', effect: 'limit' }, 1],
    ]);
    expect(await values('trellis_config_refusals_total')).toEqual([[{ key: 'pageSize' }, 1]]);
  });
});
