import { ConfigError, ManualClock } from '@trellis/core';
import { TokenBucket } from '@trellis/resilience';
import { type DiscoveryEvent } from '@trellis/registry';
import { type TrellisApp, type AppOptions } from '@trellis/app';
import { testApps } from './test-apps.js';

/** The first event of `app`'s discovery that `matches`. */
function discoveryEvent(app: TrellisApp, matches: (event: DiscoveryEvent) => boolean): Promise<DiscoveryEvent> {
  return new Promise((resolve) => {
    const subscription = app.discovery.onEvent((event) => {
      if (!matches(event)) return;
      subscription.dispose();
      resolve(event);
    });
  });
}

async function get(url: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.json() };
}

describe('the health routes of a TrellisApp', () => {
  const apps = testApps();
  const app = apps.app;

  it('is live and ready once running and registered, each check listed', async () => {
    const users = app({ service: 'users' });
    const { url, instance } = await users.start();

    expect(await get(`${url}/health/live`)).toEqual({
      status: 200,
      body: { status: 'UP', checks: { lifecycle: { status: 'UP', state: 'running' } } },
    });
    expect(await get(`${url}/health/ready`)).toEqual({
      status: 200,
      body: {
        status: 'UP',
        checks: {
          lifecycle: { status: 'UP', state: 'running' },
          registration: { status: 'UP', instance: instance.id },
        },
      },
    });
    // The old route stays as it was.
    expect(await get(`${url}/health`)).toEqual({
      status: 200,
      body: { status: 'UP', service: 'users', instance: instance.id },
    });
  });

  it('is not ready while a critical dependency has no healthy instance in discovery', async () => {
    const forum = app({ service: 'forum', calls: ['users', 'mail'], critical: ['users'] });
    const { url } = await forum.start();

    const down = await get(`${url}/health/ready`);
    expect(down).toMatchObject({
      status: 503,
      body: {
        status: 'DOWN',
        checks: { registration: { status: 'UP' }, 'dependency:users': { status: 'DOWN', healthy: 0 } },
      },
    });
    // Only critical dependencies are checked.
    expect(Object.keys((down.body as { checks: object }).checks)).toEqual([
      'lifecycle',
      'registration',
      'dependency:users',
    ]);

    const added = discoveryEvent(forum, (e) => e.type === 'instance-added' && e.service === 'users');
    const users = app({ service: 'users' });
    await users.start();
    await added;
    expect(await get(`${url}/health/ready`)).toMatchObject({
      status: 200,
      body: { status: 'UP', checks: { 'dependency:users': { status: 'UP', healthy: 1, registryReachable: true } } },
    });

    const removed = discoveryEvent(forum, (e) => e.type === 'instance-removed' && e.service === 'users');
    await users.close();
    await removed;
    expect(await get(`${url}/health/ready`)).toMatchObject({
      status: 503,
      body: { status: 'DOWN', checks: { 'dependency:users': { status: 'DOWN', healthy: 0 } } },
    });
  });

  it('is out of service but live while it drains', async () => {
    const clock = new ManualClock();
    const users = app({ service: 'users', clock, drainMs: 5_000 });
    const { url } = await users.start();

    const closing = users.close();
    expect(await get(`${url}/health/ready`)).toMatchObject({
      status: 503,
      body: {
        status: 'OUT_OF_SERVICE',
        checks: {
          lifecycle: { status: 'OUT_OF_SERVICE', state: 'draining' },
          registration: { status: 'OUT_OF_SERVICE' },
        },
      },
    });
    expect(await get(`${url}/health/live`)).toEqual({
      status: 200,
      body: { status: 'UP', checks: { lifecycle: { status: 'UP', state: 'draining' } } },
    });
    clock.advance(5_000);
    await closing;
  });

  it('tells its service, version, instance, uptime and Node.js version on /info', async () => {
    const clock = new ManualClock();
    const users = app({ service: 'users', version: '1.4.2', clock });
    const { url, instance } = await users.start();
    clock.advance(61_500);

    expect(await get(`${url}/info`)).toEqual({
      status: 200,
      body: { service: 'users', version: '1.4.2', instance: instance.id, uptimeSeconds: 61, node: process.version },
    });
  });

  it('leaves the health routes and /info out of the inbound limits', async () => {
    const clock = new ManualClock();
    const users = app({ service: 'users' });
    users.http.get('/users/1', async () => ({ id: '1' }));
    users.limitInbound({ rate: new TokenBucket({ ratePerSecond: 0.001, burst: 1, clock }) });
    const { url } = await users.start();
    expect((await fetch(`${url}/users/1`)).status).toBe(200);
    expect((await fetch(`${url}/users/1`)).status).toBe(429);

    for (const path of ['/health/live', '/health/ready', '/info', '/health']) {
      expect([path, (await fetch(`${url}${path}`)).status]).toEqual([path, 200]);
    }
  });

  it('refuses a critical dependency that is not among the calls, naming the option', () => {
    const refused = (options: Partial<AppOptions>): unknown => {
      try {
        app({ service: 'forum', ...options });
      } catch (error) {
        return error;
      }
      return undefined;
    };
    for (const options of [{ critical: ['users'] }, { calls: ['mail'], critical: ['users'] }]) {
      const error = refused(options);
      expect(error).toBeInstanceOf(ConfigError);
      expect(error).toMatchObject({ field: 'critical', message: expect.stringContaining('"users"') });
    }
    expect(refused({ calls: ['users'], critical: ['users'] })).toBeUndefined();
  });
});
