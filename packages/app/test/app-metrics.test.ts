import { type TrellisApp } from '@trellis/app';
import { parseSamples, type Sample } from '../../metrics/test/prometheus-text.js';
import { testApps } from './test-apps.js';

async function scrape(url: string): Promise<{ samples: Sample[]; contentType: string | null }> {
  const response = await fetch(`${url}/metrics`);
  expect(response.status).toBe(200);
  return { samples: parseSamples(await response.text()), contentType: response.headers.get('content-type') };
}

const named = (samples: readonly Sample[], name: string): Sample[] => samples.filter((s) => s.name === name);

describe('TrellisApp metrics', () => {
  const apps = testApps();
  const app = apps.app;

  async function usersAndForum(options: Partial<ConstructorParameters<typeof TrellisApp>[0]> = {}) {
    const users = app({ service: 'users' });
    users.http.get('/users/:id', async (request) => ({ id: (request.params as { id: string }).id }));
    users.http.get('/broken', async (_request, reply) => reply.code(500).send({ error: 'broken' }));
    const usersStarted = await users.start();
    const forum = app({ service: 'forum', calls: ['users'], ...options });
    forum.http.get('/posts/:id', async (request) => {
      const { id } = request.params as { id: string };
      return { id, author: await forum.client('users').get(`/users/${id}`, { template: '/users/:id' }) };
    });
    const forumStarted = await forum.start();
    return { users, forum, usersUrl: usersStarted.url, forumUrl: forumStarted.url };
  }

  it('serves /metrics with the calls it made, the requests it served and the process, fed over real HTTP', async () => {
    const { usersUrl, forumUrl, users } = await usersAndForum();
    for (const id of ['1', '2', '3']) expect((await fetch(`${forumUrl}/posts/${id}`)).status).toBe(200);
    expect((await fetch(`${forumUrl}/nowhere/9`)).status).toBe(404);

    const forum = await scrape(forumUrl);
    expect(forum.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const clientCounts = named(forum.samples, 'http_client_request_duration_seconds_count');
    expect(clientCounts).toEqual([
      {
        name: 'http_client_request_duration_seconds_count',
        labels: { service: 'users', method: 'GET', route: '/users/:id', status_class: '2xx', outcome: 'success' },
        value: 3,
      },
    ]);
    const buckets = named(forum.samples, 'http_client_request_duration_seconds_bucket');
    expect(buckets.find((s) => s.labels.le === '+Inf')?.value).toBe(3);
    expect(named(forum.samples, 'trellis_instance_picks_total')).toEqual([
      {
        name: 'trellis_instance_picks_total',
        labels: { service: 'users', target_instance: users.instance?.id ?? '' },
        value: 3,
      },
    ]);
    const served = named(forum.samples, 'http_server_request_duration_seconds_count').map((s) => [
      s.labels.method,
      s.labels.route,
      s.labels.status_class,
      s.value,
    ]);
    expect(served).toEqual([
      ['GET', '/posts/:id', '2xx', 3],
      ['GET', '_unknown', '4xx', 1],
    ]);
    const names = new Set(forum.samples.map((s) => s.name));
    for (const name of [
      'nodejs_eventloop_lag_seconds',
      'process_cpu_user_seconds_total',
      'nodejs_heap_size_used_bytes',
    ]) {
      expect(names).toContain(name);
    }

    // The callee counts the same calls as served requests under its own route template.
    const usersServed = named((await scrape(usersUrl)).samples, 'http_server_request_duration_seconds_count');
    expect(usersServed.map((s) => [s.labels.route, s.labels.status_class, s.value])).toEqual([
      ['/users/:id', '2xx', 3],
    ]);
  });

  it('keeps the series bounded when 10,000 distinct paths are called and served', async () => {
    const { usersUrl, forum, forumUrl } = await usersAndForum();
    const client = forum.client('users');
    const paths = Array.from({ length: 10_000 }, (_, i) => (i % 2 === 0 ? `/users/${i}` : `/scan/${i}?q=${i}`));
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < paths.length) {
        const path = paths[next++] as string;
        // No template given: the client's route label is the placeholder, never the path.
        await client.request({ path, retry: false });
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));

    const clientSeries = named((await scrape(forumUrl)).samples, 'http_client_request_duration_seconds_count');
    expect(clientSeries.map((s) => [s.labels.route, s.labels.status_class, s.value])).toEqual([
      ['_unknown', '2xx', 5_000],
      ['_unknown', '4xx', 5_000],
    ]);
    const serverSeries = named((await scrape(usersUrl)).samples, 'http_server_request_duration_seconds_count');
    expect(serverSeries.map((s) => [s.labels.route, s.labels.status_class, s.value])).toEqual([
      ['/users/:id', '2xx', 5_000],
      ['_unknown', '4xx', 5_000],
    ]);
    // Every series of the app, process metrics included, stays in the hundreds.
    expect((await scrape(usersUrl)).samples.length).toBeLessThan(300);
  }, 120_000);

  it('shows a breaker opening in the state gauge and the transition counter', async () => {
    const { users, forumUrl, forum } = await usersAndForum({ breaker: { minimumCalls: 2, failureRateThreshold: 0.5 } });
    const client = forum.client('users');
    for (let i = 0; i < 2; i++) {
      expect((await client.request({ path: '/broken', template: '/broken', retry: false })).status).toBe(500);
    }
    const instance = users.instance?.id ?? '';
    const samples = (await scrape(forumUrl)).samples;
    const gauge = named(samples, 'trellis_circuit_state').map((s) => [
      s.labels.service,
      s.labels.target_instance,
      s.labels.state,
      s.value,
    ]);
    expect(gauge).toEqual([
      ['users', instance, 'closed', 0],
      ['users', instance, 'open', 1],
      ['users', instance, 'half-open', 0],
      ['users', instance, 'isolated', 0],
    ]);
    expect(named(samples, 'trellis_circuit_transitions_total')).toEqual([
      {
        name: 'trellis_circuit_transitions_total',
        labels: { service: 'users', target_instance: instance, from: 'closed', to: 'open' },
        value: 1,
      },
    ]);
    expect(
      named(samples, 'http_client_request_duration_seconds_count').map((s) => [
        s.labels.route,
        s.labels.outcome,
        s.value,
      ]),
    ).toEqual([['/broken', 'failure', 2]]);
  });

  it('shows every breaker the app holds at scrape time, one that never changed state included', async () => {
    const { users, forum, forumUrl } = await usersAndForum();
    const instance = users.instance?.id ?? '';
    expect(named((await scrape(forumUrl)).samples, 'trellis_circuit_state')).toEqual([]);
    expect((await forum.client('users').request({ path: '/users/1', template: '/users/:id' })).status).toBe(200);
    // No state change happened: the series come from the breaker apps.registry, read when scraped.
    const gauge = named((await scrape(forumUrl)).samples, 'trellis_circuit_state');
    expect(gauge.map((s) => [s.labels.service, s.labels.target_instance, s.labels.state, s.value])).toEqual([
      ['users', instance, 'closed', 1],
      ['users', instance, 'open', 0],
      ['users', instance, 'half-open', 0],
      ['users', instance, 'isolated', 0],
    ]);
    forum.breakers.get('users', instance).isolate();
    const isolated = named((await scrape(forumUrl)).samples, 'trellis_circuit_state').filter((s) => s.value === 1);
    expect(isolated.map((s) => s.labels.state)).toEqual(['isolated']);
  });

  it('shows what discovery knows of the services it calls, its registration and apps.registry reachability', async () => {
    const { forum, forumUrl } = await usersAndForum();
    expect((await forum.client('users').request({ path: '/users/1', template: '/users/:id' })).status).toBe(200);
    const samples = (await scrape(forumUrl)).samples;
    const shown = (name: string) => named(samples, name).map((s) => [s.labels, s.value]);
    expect(shown('trellis_discovery_instances')).toEqual([
      [{ service: 'users', health: 'healthy' }, 1],
      [{ service: 'users', health: 'unhealthy' }, 0],
    ]);
    expect(shown('trellis_discovery_panic')).toEqual([[{ service: 'users' }, 0]]);
    expect(named(samples, 'trellis_discovery_update_age_seconds').map((s) => s.labels.service)).toEqual(['users']);
    expect(shown('trellis_registry_reachable')).toEqual([[{}, 1]]);
    expect(shown('trellis_registration_state')).toEqual([
      [{ state: 'new' }, 0],
      [{ state: 'registered' }, 1],
      [{ state: 'failing' }, 0],
      [{ state: 'closed' }, 0],
    ]);
  });

  it('serves no /metrics and subscribes nothing with metrics: false', async () => {
    const quiet = app({ service: 'quiet', metrics: false });
    const { url } = await quiet.start();
    expect(quiet.metrics).toBeUndefined();
    expect(quiet.telemetry.enabled).toBe(false);
    expect((await fetch(`${url}/metrics`)).status).toBe(404);
  });
});
