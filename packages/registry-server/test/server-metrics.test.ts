import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { closeAll, startServer, testNodeName, type Running } from './helpers.js';
import { parseSamples, type Sample } from '../../metrics/test/prometheus-text.js';

async function scrape(url: string, pathAndQuery = '/metrics', token?: string): Promise<Sample[]> {
  const response = await fetch(
    `${url}${pathAndQuery}`,
    token === undefined ? {} : { headers: { 'X-Consul-Token': token } },
  );
  const body = await response.text();
  if (response.status !== 200) throw new Error(`${pathAndQuery} answered ${response.status}: ${body}`);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseSamples(body);
}

function value(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

async function heldQueries(running: Running, count: number): Promise<void> {
  for (let i = 0; i < 10_000 && running.server.heldQueries < count; i++) await new Promise((r) => setImmediate(r));
  expect(running.server.heldQueries).toBe(count);
}

afterEach(closeAll);

describe('registry server metrics', () => {
  it('serves catalog and KV sizes, requests by route template and process metrics, on /metrics and Consul’s agent path', async () => {
    const running = await startServer();
    const { consul, url } = running;
    await consul.agent.service.register({ name: 'users', id: 'users-1', port: 4001 });
    await consul.agent.service.register({ name: 'users', id: 'users-2', port: 4002 });
    // A TTL check starts critical.
    await consul.agent.service.register({ name: 'mail', id: 'mail-1', port: 25, check: { ttl: '30s' } as never });
    await consul.kv.set('config/a', 'x'.repeat(10));
    await consul.kv.set('config/b', 'y'.repeat(32));
    await consul.health.service({ service: 'users' });

    for (const samples of [await scrape(url), await scrape(url, '/v1/agent/metrics?format=prometheus')]) {
      expect(value(samples, 'trellis_registry_server_catalog_services')).toBe(2);
      expect(value(samples, 'trellis_registry_server_catalog_instances', { health: 'passing' })).toBe(2);
      expect(value(samples, 'trellis_registry_server_catalog_instances', { health: 'critical' })).toBe(1);
      expect(value(samples, 'trellis_registry_server_catalog_instances', { health: 'warning' })).toBe(0);
      expect(value(samples, 'trellis_registry_server_kv_keys')).toBe(2);
      expect(value(samples, 'trellis_registry_server_kv_bytes')).toBe(42);
      expect(value(samples, 'trellis_registry_server_blocking_queries')).toBe(0);
      expect(value(samples, 'trellis_registry_server_answer_cache_bytes')).toBeGreaterThan(0);
      // Process metrics are there; CPU time counts from when they were registered, and the kernel
      // accounts it in ticks, so a quick test can see 0 seconds (CI did): only the start time is sure.
      expect(value(samples, 'process_cpu_user_seconds_total')).toBeGreaterThanOrEqual(0);
      expect(value(samples, 'process_start_time_seconds')).toBeGreaterThan(0);
      expect(value(samples, 'nodejs_eventloop_lag_seconds')).toBeDefined();
      const count = 'http_server_request_duration_seconds_count';
      expect(value(samples, count, { method: 'PUT', route: '/v1/agent/service/register', status_class: '2xx' })).toBe(
        3,
      );
      expect(value(samples, count, { method: 'PUT', route: '/v1/kv/*', status_class: '2xx', blocking: 'false' })).toBe(
        2,
      );
      expect(value(samples, count, { method: 'GET', route: '/v1/health/service/:name' })).toBe(1);
    }
    const plain = await fetch(`${url}/v1/agent/metrics`);
    expect(plain.status).toBe(400);
    expect(await plain.text()).toMatch(/format=prometheus/);
  });

  it('counts blocking queries held, and the watchers each change wakes', async () => {
    const running = await startServer();
    const { consul, url } = running;
    await consul.agent.service.register({ name: 'users', id: 'users-1', port: 4001 });
    const index = (await fetch(`${url}/v1/health/service/users`)).headers.get('x-consul-index');
    const watchers = Array.from({ length: 3 }, () => fetch(`${url}/v1/health/service/users?index=${index}&wait=60s`));
    await heldQueries(running, 3);
    expect(value(await scrape(url), 'trellis_registry_server_blocking_queries')).toBe(3);
    const before = await scrape(url);

    await consul.agent.service.register({ name: 'users', id: 'users-2', port: 4002 });
    await Promise.all((await Promise.all(watchers)).map((r) => r.text()));

    const after = await scrape(url);
    expect(value(after, 'trellis_registry_server_blocking_queries')).toBe(0);
    const woken = (samples: Sample[]) => value(samples, 'trellis_registry_server_watchers_woken_sum') ?? 0;
    expect(woken(after) - woken(before)).toBe(3);
    // The one change woke all three: it is counted in the bucket of 5, not in that of 2.
    const bucket = (samples: Sample[], le: string) =>
      value(samples, 'trellis_registry_server_watchers_woken_bucket', { le }) ?? 0;
    expect(bucket(after, '5') - bucket(before, '5')).toBe(1);
    expect(bucket(after, '2') - bucket(before, '2')).toBe(0);
    expect(
      value(after, 'http_server_request_duration_seconds_count', {
        route: '/v1/health/service/:name',
        blocking: 'true',
        status_class: '2xx',
      }),
    ).toBe(3);
  });

  it('keeps the request series bounded when 10,000 distinct paths are asked for', async () => {
    const { url } = await startServer();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < 10_000) {
        const i = next++;
        const response = await fetch(i % 2 === 0 ? `${url}/v1/kv/scan/${i}` : `${url}/scan/${i}?q=${i}`);
        await response.arrayBuffer();
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));

    const samples = await scrape(url);
    const counts = samples
      .filter((s) => s.name === 'http_server_request_duration_seconds_count')
      .map((s) => [s.labels.method, s.labels.route, s.labels.status_class, s.value]);
    expect(counts).toEqual([
      ['GET', '/v1/kv/*', '4xx', 5_000],
      ['GET', '_unknown', '4xx', 5_000],
    ]);
    expect(samples.length).toBeLessThan(300);
  }, 120_000);

  it('counts ACL denials, and asks agent:read for Consul’s metrics path as Consul does', async () => {
    const root = 'root-secret';
    const { url } = await startServer(undefined, { acl: { enabled: true, initialManagementToken: root } });
    const call = (method: string, target: string, token?: string, body?: unknown) =>
      fetch(`${url}${target}`, {
        method,
        headers: token === undefined ? {} : { 'X-Consul-Token': token },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    const policy = (await (
      await call('PUT', '/v1/acl/policy', root, {
        Name: 'metrics',
        Rules: `agent "${testNodeName}" { policy = "read" }`,
      })
    ).json()) as { ID: string };
    const token = (await (await call('PUT', '/v1/acl/token', root, { Policies: [{ ID: policy.ID }] })).json()) as {
      SecretID: string;
    };

    expect((await call('GET', '/v1/kv/a', 'no-such-secret')).status).toBe(403);
    expect((await call('GET', '/v1/kv/a')).status).toBe(403);
    expect((await call('GET', '/v1/agent/metrics?format=prometheus')).status).toBe(403);
    expect((await call('GET', '/v1/agent/metrics?format=prometheus', token.SecretID)).status).toBe(200);

    // /metrics is open, as /v1/status/leader is: it names no service, key or token.
    const samples = await scrape(url);
    expect(value(samples, 'trellis_registry_server_acl_denials_total', { reason: 'token-not-found' })).toBe(1);
    expect(value(samples, 'trellis_registry_server_acl_denials_total', { reason: 'permission-denied' })).toBe(2);
    expect(
      value(
        await scrape(url, '/v1/agent/metrics?format=prometheus', token.SecretID),
        'trellis_registry_server_acl_denials_total',
        {
          reason: 'permission-denied',
        },
      ),
    ).toBe(2);
  });

  it('times the journal’s fsync with a data directory, and serves nothing with metrics: false', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-metrics-'));
    try {
      const { consul, url } = await startServer(undefined, { dataDir: dir });
      await consul.agent.service.register({ name: 'users', id: 'users-1', port: 4001 });
      await consul.kv.set('a', 'b');
      const samples = await scrape(url);
      expect(value(samples, 'trellis_registry_server_journal_fsync_duration_seconds_count')).toBeGreaterThanOrEqual(2);
      expect(value(samples, 'trellis_registry_server_journal_fsync_duration_seconds_sum')).toBeGreaterThan(0);

      const quiet = await startServer(undefined, { metrics: false });
      expect((await fetch(`${quiet.url}/metrics`)).status).toBe(404);
      expect((await fetch(`${quiet.url}/v1/agent/metrics?format=prometheus`)).status).toBe(404);
    } finally {
      await closeAll();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
