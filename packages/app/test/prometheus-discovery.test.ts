import { afterEach, describe, expect, it } from '@jest/globals';
import { TrellisApp } from '@trellis/app';
import { prometheusTargetsPath, RegistryServer } from '@trellis/registry-server';
import { eventually, startPrometheus, type RunningPrometheus } from './prometheus-server.js';

// A real Prometheus (Debian's, which has no Consul discovery compiled in) finds the services and
// the registry through the registry's HTTP service discovery alone, scrapes them, and answers
// queries about the calls between them.
describe('Prometheus finds and scrapes Trellis services through the registry', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('discovers users, forum and the registry, and reads back the client histogram of calls to users', async () => {
    const registry = new RegistryServer({ logLevel: 'silent' });
    const { url: registryUrl } = await registry.listen({ port: 0, host: '127.0.0.1' });
    cleanups.push(() => registry.close());

    const users = new TrellisApp({ service: 'users', registryUrl, logLevel: 'silent', drainMs: 0 });
    users.http.get<{ Params: { id: string } }>('/users/:id', async (request) => ({ id: request.params.id }));
    cleanups.push(() => users.close());
    await users.start();
    const forum = new TrellisApp({ service: 'forum', calls: ['users'], registryUrl, logLevel: 'silent', drainMs: 0 });
    forum.http.get<{ Params: { id: string } }>('/posts/:id', async (request) => ({
      author: await forum.client('users').get(`/users/${request.params.id}`, { template: '/users/:id' }),
    }));
    cleanups.push(() => forum.close());
    const { url: forumUrl } = await forum.start();
    for (const id of ['1', '2', '3', '4', '5']) expect((await fetch(`${forumUrl}/posts/${id}`)).status).toBe(200);

    // The whole scrape config: where the registry is. No per-service job, no relabelling.
    const prometheus: RunningPrometheus = await startPrometheus(`
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: trellis
    http_sd_configs:
      - url: ${registryUrl}${prometheusTargetsPath}
        refresh_interval: 1s
`);
    cleanups.push(() => prometheus.stop());

    // Every target up, each under its service's job and its instance id.
    const targets = await eventually(async () => {
      const active = await prometheus.targets();
      const up = new Set(active.filter((t) => t.health === 'up').map((t) => t.labels['job']));
      return ['users', 'forum', 'consul'].every((job) => up.has(job)) ? active : undefined;
    }, 'Prometheus to discover and scrape users, forum and the registry');
    expect(targets.find((t) => t.labels['job'] === 'users')?.labels['instance']).toBe(users.instance?.id);
    expect(targets.find((t) => t.labels['job'] === 'forum')?.scrapeUrl).toBe(`${forumUrl}/metrics`);

    // The forum's calls to users, counted by the forum's client, read back through PromQL.
    const calls = await eventually(async () => {
      const result = await prometheus.query(
        'sum by (job, instance, service, route, outcome) (http_client_request_duration_seconds_count{service="users"})',
      );
      return result.length > 0 ? result : undefined;
    }, 'the client histogram of calls to users');
    expect(calls).toEqual([
      {
        metric: {
          job: 'forum',
          instance: forum.instance?.id,
          service: 'users',
          route: '/users/:id',
          outcome: 'success',
        },
        value: [expect.any(Number), '5'],
      },
    ]);
    // The callee's side of the same calls, what the forum's discovery knows, and the registry's own series.
    const served = await eventually(async () => {
      const result = await prometheus.query(
        'http_server_request_duration_seconds_count{job="users",route="/users/:id"}',
      );
      return result.length > 0 ? result : undefined;
    }, 'the users server histogram');
    expect(served.map((s) => s.value[1])).toEqual(['5']);
    const known = await prometheus.query('trellis_discovery_instances{job="forum",service="users",health="healthy"}');
    expect(known.map((s) => s.value[1])).toEqual(['1']);
    const catalog = await prometheus.query('trellis_registry_server_catalog_instances{job="consul",health="passing"}');
    expect(catalog.map((s) => s.value[1])).toEqual(['2']);
  });
});
