import { afterEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '@trellis/core';
import { closeAll, health, put, startServer, type Running } from './helpers.js';

afterEach(closeAll);

/** Waits until the server holds `count` blocking queries (bounded: fails rather than hangs). */
async function held(running: Running, count: number): Promise<void> {
  for (let i = 0; i < 10_000 && running.server.heldQueries !== count; i++) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  expect(running.server.heldQueries).toBe(count);
}

async function ok(url: string, body?: string): Promise<void> {
  const reply = await put(url, body);
  expect([reply.status, reply.text]).toEqual([200, '']);
}

describe('a check that moves to another service (a check ID is unique on the node)', () => {
  it.each([
    [
      're-registering a service with it',
      '/v1/agent/service/register',
      { Name: 'users', ID: 'users-1', Checks: [{ CheckID: 'shared', TTL: '30s' }] },
    ],
    [
      'registering it on its own',
      '/v1/agent/check/register',
      { Name: 'shared', ID: 'shared', ServiceID: 'users-1', TTL: '30s' },
    ],
  ])('wakes the watchers of both services and refreshes both cached answers, %s', async (_how, route, move) => {
    const running = await startServer(new ManualClock());
    const { url } = running;
    await ok(
      `${url}/v1/agent/service/register`,
      JSON.stringify({ Name: 'mail', ID: 'mail-1', Checks: [{ CheckID: 'shared', TTL: '30s' }] }),
    );
    await ok(`${url}/v1/agent/service/register`, JSON.stringify({ Name: 'users', ID: 'users-1' }));
    await ok(`${url}/v1/agent/check/pass/shared`);

    // Both answers are cached at their services' indexes.
    const mail = await health(url, 'mail', '?passing');
    expect(mail.entries.map((e) => e.Checks.map((c) => c.CheckID))).toEqual([['serfHealth', 'shared']]);
    const users = await health(url, 'users', '?passing');
    const mailWatch = health(url, 'mail', `?passing&index=${mail.index}`);
    const usersWatch = health(url, 'users', `?passing&index=${users.index}`);
    await held(running, 2);

    await ok(`${url}${route}`, JSON.stringify(move));
    // Both watchers are answered by the change, not by their wait running out.
    await held(running, 0);
    const mailAfter = await mailWatch;
    expect(mailAfter.index).toBeGreaterThan(mail.index);
    expect(mailAfter.entries.map((e) => e.Checks.map((c) => c.CheckID))).toEqual([['serfHealth']]);
    const usersAfter = await usersWatch;
    expect(usersAfter.index).toBeGreaterThan(users.index);
    expect(usersAfter.entries.map((e) => e.Checks.map((c) => c.CheckID))).toEqual([['serfHealth', 'shared']]);

    // Failing it now concerns users only; mail's answer no longer shows it, passing or not.
    await ok(`${url}/v1/agent/check/fail/shared`);
    expect((await health(url, 'users', '?passing')).entries).toEqual([]);
    const mailNow = await health(url, 'mail');
    expect(mailNow.entries.map((e) => e.Checks.map((c) => [c.CheckID, c.Status]))).toEqual([
      [['serfHealth', 'passing']],
    ]);
  });

  it('from the node to a service, wakes the watchers of every service (a node check counted for them all)', async () => {
    const running = await startServer(new ManualClock());
    const { url } = running;
    await ok(`${url}/v1/agent/service/register`, JSON.stringify({ Name: 'mail', ID: 'mail-1' }));
    await ok(`${url}/v1/agent/service/register`, JSON.stringify({ Name: 'users', ID: 'users-1' }));
    await ok(`${url}/v1/agent/check/register`, JSON.stringify({ Name: 'disk', TTL: '30s' }));
    // The node's critical check keeps every instance out of ?passing.
    const mail = await health(url, 'mail', '?passing');
    expect(mail.entries).toEqual([]);
    const mailWatch = health(url, 'mail', `?passing&index=${mail.index}`);
    await held(running, 1);
    await ok(`${url}/v1/agent/check/register`, JSON.stringify({ Name: 'disk', ServiceID: 'users-1', TTL: '30s' }));
    await held(running, 0);
    const after = await mailWatch;
    expect(after.entries.map((e) => e.Service.ID)).toEqual(['mail-1']);
    expect((await health(url, 'users', '?passing')).entries).toEqual([]);
  });
});
