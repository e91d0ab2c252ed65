import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { closeAll, lines, startRegistry, trellis } from './helpers.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'trellis-cli-rules-'));
});
afterEach(async () => {
  rmSync(dir, { recursive: true, force: true });
  await closeAll();
});

/** A rules document written to a file; its path. */
function rulesFile(name: string, rules: unknown): string {
  const file = path.join(dir, name);
  writeFileSync(file, typeof rules === 'string' ? rules : JSON.stringify(rules));
  return file;
}

const v1 = { client: { retry: { maxAttempts: 3 } }, limits: { rate: { ratePerSecond: 100 } } };
const v2 = { client: { retry: { maxAttempts: 5 } }, limits: { rate: { ratePerSecond: 100 } } };

async function liveRules(env: Record<string, string>, service: string): Promise<unknown> {
  const result = await trellis(['rules', 'get', service, '--json'], { env });
  expect(result).toMatchObject({ code: 0, stderr: '' });
  return JSON.parse(result.stdout).live;
}

describe('trellis rules', () => {
  it('set, get, diff, history and rollback round trip', async () => {
    const { url } = await startRegistry();
    const env = { CONSUL_HTTP_ADDR: url, USER: 'ana' };

    expect(
      (await trellis(['rules', 'set', 'users', '--file', rulesFile('v1.json', v1), '--reason', 'first'], { env }))
        .stdout,
    ).toMatch(/^users: rules version 1 written \(ana@.+: first\)\n$/);

    const get = await trellis(['rules', 'get', 'users'], { env });
    expect(get.code).toBe(0);
    expect(get.stdout).toMatch(
      /^service: +users\nversion: +1\nauthor: +ana@\S+\nreason: +first\ntime: +\d{4}-\d\d-\d\dT/,
    );
    expect(get.stdout).toContain('"maxAttempts": 3');
    expect(get.stdout).toContain('running: no instance reports running these rules');

    // The candidate from standard input: what would change, path by path; nothing is written.
    const diff = await trellis(['rules', 'diff', 'users'], { env, stdin: JSON.stringify(v2) });
    expect(diff.code).toBe(0);
    expect(lines(diff.stdout)).toEqual([
      expect.stringMatching(/^PATH +BEFORE +AFTER$/),
      expect.stringMatching(/^client\.retry\.maxAttempts +3 +5$/),
    ]);
    expect(await liveRules(env, 'users')).toMatchObject({ version: 1 });

    const set2 = await trellis(['rules', 'set', 'users', '--reason', 'more retries', '--author', 'bo'], {
      env,
      stdin: JSON.stringify(v2),
    });
    expect(set2).toEqual({ code: 0, stdout: 'users: rules version 2 written (bo: more retries)\n', stderr: '' });

    const history = await trellis(['rules', 'history', 'users'], { env });
    expect(lines(history.stdout)).toEqual([
      expect.stringMatching(/^VERSION +TIME +AUTHOR +REASON$/),
      expect.stringMatching(/^2 +\S+ +bo +more retries$/),
      expect.stringMatching(/^1 +\S+ +ana@\S+ +first$/),
    ]);
    expect(lines((await trellis(['rules', 'history', 'users', '--limit', '1'], { env })).stdout)).toHaveLength(2);

    const back = await trellis(['rules', 'rollback', 'users', '--reason', 'too many retries'], { env });
    expect(back).toMatchObject({ code: 0, stderr: '' });
    expect(back.stdout).toMatch(/^users: rolled back; the live rules are version 3 /);
    expect(await liveRules(env, 'users')).toMatchObject({ version: 3, reason: 'too many retries', rules: v1 });

    const to = await trellis(['rules', 'rollback', 'users', '--to', '2', '--reason', 'after all'], { env });
    expect(to.code).toBe(0);
    expect(await liveRules(env, 'users')).toMatchObject({ version: 4, rules: v2 });
  });

  it.each([
    ['a field of the wrong type', { client: { retry: { maxAttempts: 'three' } } }, 'client.retry.maxAttempts'],
    ['an unknown section', { clinet: {} }, 'clinet'],
    ['a bad gateway route', { gateway: { routes: [{ match: { pathPrefix: '/api/' } }] } }, 'gateway.routes[0]'],
  ])('refuses %s with exit code 2 naming the field, writing nothing', async (_what, rules, field) => {
    const { url } = await startRegistry();
    const env = { CONSUL_HTTP_ADDR: url };
    expect((await trellis(['rules', 'set', 'forum', '--reason', 'ok'], { env, stdin: JSON.stringify(v1) })).code).toBe(
      0,
    );

    const refused = await trellis(['rules', 'set', 'forum', '--reason', 'bad'], { env, stdin: JSON.stringify(rules) });
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe('');
    expect(lines(refused.stderr)).toEqual([
      expect.stringMatching(
        new RegExp(`^trellis: invalid rules for forum: ${field.replace(/[.[\]]/g, '\\$&')}: .+; nothing was written$`),
      ),
    ]);
    expect(await liveRules(env, 'forum')).toMatchObject({ version: 1, rules: v1 });
    expect(JSON.parse((await trellis(['rules', 'history', 'forum', '--json'], { env })).stdout)).toHaveLength(1);
    // A dry run and a diff check the candidate the same way.
    expect(
      (await trellis(['rules', 'dry-run', 'forum', '--reason', 'x'], { env, stdin: JSON.stringify(rules) })).code,
    ).toBe(2);
    expect((await trellis(['rules', 'diff', 'forum'], { env, stdin: JSON.stringify(rules) })).code).toBe(2);
  });

  it('refuses text that is not JSON, and a write without --reason, with exit code 2', async () => {
    const { url } = await startRegistry();
    const env = { CONSUL_HTTP_ADDR: url };
    const notJson = await trellis(
      ['rules', 'set', 'forum', '--reason', 'x', '--file', rulesFile('bad.json', '{ client:')],
      { env },
    );
    expect(notJson.code).toBe(2);
    expect(lines(notJson.stderr)).toEqual([
      expect.stringMatching(/^trellis: the rules in --file ".*bad\.json" are not JSON: /),
    ]);

    const noReason = await trellis(['rules', 'set', 'forum'], { env, stdin: JSON.stringify(v1) });
    expect(noReason.code).toBe(2);
    expect(lines(noReason.stderr)).toEqual([
      'trellis: rules set needs --reason <text>: every version says why it was made',
    ]);

    const noInput = await trellis(['rules', 'set', 'forum', '--reason', 'x'], { env });
    expect(noInput.code).toBe(2);
    expect(lines(noInput.stderr)).toEqual(['trellis: give the rules with --file <path>, or on standard input']);

    expect((await trellis(['kv', 'get', 'trellis/', '--recurse'], { env })).code).toBe(1);
  });

  it('answers not found with exit code 1 for a service with no rules', async () => {
    const { url } = await startRegistry();
    const env = { CONSUL_HTTP_ADDR: url };
    for (const args of [
      ['rules', 'get', 'mail'],
      ['rules', 'history', 'mail'],
    ]) {
      const result = await trellis(args, { env });
      expect(result.code).toBe(1);
      expect(lines(result.stderr)).toEqual([expect.stringMatching(/^trellis: service "mail" has no rules at /)]);
    }
    const rollback = await trellis(['rules', 'rollback', 'mail', '--reason', 'x'], { env });
    expect(rollback.code).toBe(1);
    expect(lines(rollback.stderr)).toHaveLength(1);
  });

  it('starts a dry run beside the live rules, shows it, and stops it', async () => {
    const { url } = await startRegistry();
    const env = { CONSUL_HTTP_ADDR: url };
    await trellis(['rules', 'set', 'users', '--reason', 'live'], { env, stdin: JSON.stringify(v1) });
    const start = await trellis(['rules', 'dry-run', 'users', '--reason', 'try 5'], { env, stdin: JSON.stringify(v2) });
    expect(start).toMatchObject({ code: 0, stderr: '' });
    expect(start.stdout).toMatch(/^users: dry run of candidate version 2 started/);

    const both = JSON.parse((await trellis(['rules', 'get', 'users', '--json'], { env })).stdout);
    expect(both.live).toMatchObject({ version: 1, rules: v1 });
    expect(both.dryRun).toMatchObject({ version: 2, reason: 'try 5', rules: v2 });
    expect((await trellis(['rules', 'get', 'users'], { env })).stdout).toContain(
      'dry run (evaluated beside the live rules',
    );

    const conflicting = await trellis(['rules', 'dry-run', 'users', '--stop', '--reason', 'x'], { env });
    expect(conflicting.code).toBe(2);
    expect(await trellis(['rules', 'dry-run', 'users', '--stop'], { env })).toEqual({
      code: 0,
      stdout: 'users: dry run stopped\n',
      stderr: '',
    });
    expect(JSON.parse((await trellis(['rules', 'get', 'users', '--json'], { env })).stdout).dryRun).toBeNull();
  });
});
