import { afterEach, describe, expect, it } from '@jest/globals';
import Consul from 'consul';
import { ConsulKv, RunningReport } from '@trellis/config';
import { closeAll, lines, startRegistry, trellis } from './helpers.js';

const open: Array<{ close(): Promise<void> | void }> = [];
afterEach(async () => {
  for (const item of open.splice(0).reverse()) await item.close();
  await closeAll();
});

describe('who runs which rules version', () => {
  it('rules get and instances show what each instance reports under trellis/running/', async () => {
    const { url } = await startRegistry();
    const env = { CONSUL_HTTP_ADDR: url };
    const consul = new Consul({ host: '127.0.0.1', port: Number(new URL(url).port) });
    open.push({ close: () => consul.destroy() });
    for (const [id, port] of [
      ['forum-1', 4101],
      ['forum-2', 4102],
    ] as const) {
      await consul.agent.service.register({
        id,
        name: 'forum',
        address: '127.0.0.1',
        port,
        meta: { version: '2.0.0' },
      });
    }
    await trellis(['rules', 'set', 'users', '--reason', 'first'], {
      env,
      stdin: '{"client":{"retry":{"maxAttempts":3}}}',
    });
    await trellis(['rules', 'set', 'users', '--reason', 'second'], {
      env,
      stdin: '{"client":{"retry":{"maxAttempts":4}}}',
    });

    // Two forum instances call users: one runs version 2 with a dry run of 3, one refused 2 and runs 1.
    const kv = new ConsulKv({ url });
    open.push(kv);
    const one = new RunningReport({ kv, service: 'forum', instance: 'forum-1' });
    const two = new RunningReport({ kv, service: 'forum', instance: 'forum-2' });
    open.push(one, two);
    one.set('users', { version: 2, dryRun: 3 });
    two.set('users', {
      version: 1,
      refused: { version: 2, field: 'client.retry', problem: 'this client has no retry stage' },
    });
    await Promise.all([one.flush(), two.flush()]);

    const get = await trellis(['rules', 'get', 'users'], { env });
    expect(get.code).toBe(0);
    const running = lines(get.stdout.slice(get.stdout.indexOf('running:')));
    expect(running).toEqual([
      'running:',
      expect.stringMatching(/^INSTANCE +SERVICE +VERSION +DRY-RUN +REFUSED$/),
      expect.stringMatching(/^forum-1 +forum +2 +3 +-$/),
      expect.stringMatching(/^forum-2 +forum +1 +- +version 2: client\.retry: this client has no retry stage$/),
    ]);

    const instances = await trellis(['instances', 'forum'], { env });
    expect(lines(instances.stdout)).toEqual([
      expect.stringMatching(/^ID +ADDRESS +HEALTH +VERSION +ZONE +RULES$/),
      expect.stringMatching(/^forum-1 +127\.0\.0\.1:4101 +passing +2\.0\.0 +- +users@2 \(dry run 3\)$/),
      expect.stringMatching(/^forum-2 +127\.0\.0\.1:4102 +passing +2\.0\.0 +- +users@1 refused 2 \(client\.retry\)$/),
    ]);
  });
});
