import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError } from '@trellis/core';
import { readAppOptions, type AppOptions } from '@trellis/app';

let cwd: string;
beforeEach(() => {
  cwd = mkdtempSync(path.join(tmpdir(), 'trellis-config-'));
});
afterEach(() => rmSync(cwd, { recursive: true, force: true }));

describe('precedence of the options in code, the config file and the environment', () => {
  it('lets the file override the code, and the environment override both', () => {
    writeFileSync(path.join(cwd, 'trellis.config.yaml'), 'port: 8080\nweight: 3\nzone: from-file\n');
    const code: AppOptions = { service: 'users', port: 1, weight: 1, zone: 'from-code', version: '1.0.0' };
    expect(readAppOptions(code, { cwd, env: { TRELLIS_WEIGHT: '7' } })).toEqual({
      service: 'users',
      version: '1.0.0', // code only
      zone: 'from-file', // file over code
      port: 8080, // file over code
      weight: 7, // environment over file and code
    });
  });

  it('merges the client and discovery objects field by field, keeping what code alone can give', () => {
    writeFileSync(path.join(cwd, 'trellis.config.json'), '{"client": {"strategy": "random", "deadlineMs": 900}}');
    const stack = (): void => undefined;
    const options = readAppOptions(
      {
        service: 'forum',
        client: { strategy: 'round-robin', attemptTimeoutMs: 500, stack },
        discovery: { recoveryGraceMs: 1_000 },
      },
      { cwd, env: { TRELLIS_CLIENT_DEADLINE_MS: '700', TRELLIS_FAILOVER_DIR: '/tmp/failover' } },
    );
    expect(options.client).toEqual({ strategy: 'random', attemptTimeoutMs: 500, deadlineMs: 700, stack });
    expect(options.discovery).toEqual({ recoveryGraceMs: 1_000, failoverDir: '/tmp/failover' });
  });

  it('turns metrics off from a file, and back on from the environment', () => {
    writeFileSync(path.join(cwd, 'trellis.config.json'), '{"metrics": false}');
    expect(readAppOptions({ service: 'users' }, { cwd, env: {} }).metrics).toBe(false);
    expect(readAppOptions({ service: 'users' }, { cwd, env: { TRELLIS_METRICS: 'true' } })).not.toHaveProperty(
      'metrics',
    );
  });

  it('checks the options in code with the same ranges, naming the option', () => {
    let error: unknown;
    try {
      readAppOptions({ service: 'users', weight: 2_000_000 }, { cwd, env: {} });
    } catch (e) {
      error = e;
    }
    expect(ConfigError.is(error) && [error.field, error.problem]).toEqual([
      'weight',
      'must be an integer from 0 to 1000000, got 2000000',
    ]);
  });

  it('does not check a bad code value that the file or environment replaces', () => {
    writeFileSync(path.join(cwd, 'trellis.config.json'), '{"port": 8080}');
    expect(readAppOptions({ service: 'users', port: -1 }, { cwd, env: {} }).port).toBe(8080);
  });
});
