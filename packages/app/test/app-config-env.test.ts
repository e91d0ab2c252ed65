import { appOptionsFromEnv, readAppOptions } from '@trellis/app';
import { refusal } from '../../core/test/config-refusal.js';

// Reads the environment alone: no config file is looked for.
const fromEnv = (env: Record<string, string>) => readAppOptions({ service: 'users' }, { env, file: false });

describe('app settings from the environment', () => {
  it('reads every documented variable into the options of its setting', () => {
    expect(
      fromEnv({
        HOST: '0.0.0.0',
        PORT: '4001',
        TRELLIS_ADVERTISE_ADDRESS: '10.0.0.5',
        TRELLIS_INSTANCE_ID: 'users-1',
        TRELLIS_REGISTRY_URL: 'https://registry.internal:8501',
        TRELLIS_VERSION: '2.0.0',
        TRELLIS_ZONE: 'b',
        TRELLIS_WEIGHT: '3',
        TRELLIS_TAGS: 'blue, canary,',
        TRELLIS_LABELS: 'team=identity, tier = gold',
        TRELLIS_TTL_MS: '3000',
        TRELLIS_DEREGISTER_AFTER_MS: '30000',
        TRELLIS_DRAIN_MS: '250',
        TRELLIS_LOG_LEVEL: 'warn',
        TRELLIS_METRICS: 'false',
        TRELLIS_PAGE: 'FALSE',
        TRELLIS_CLIENT_STRATEGY: 'round-robin',
        TRELLIS_CLIENT_TRANSPORT: 'undici',
        TRELLIS_CLIENT_ATTEMPT_TIMEOUT_MS: 'false',
        TRELLIS_CLIENT_DEADLINE_MS: '2000',
        TRELLIS_FAILOVER_DIR: '/var/cache/users',
        TRELLIS_DISCOVERY_PANIC_THRESHOLD: '0.25',
        TRELLIS_DISCOVERY_RECOVERY_GRACE_MS: '5000',
      }),
    ).toEqual({
      service: 'users',
      host: '0.0.0.0',
      port: 4001,
      advertiseAddress: '10.0.0.5',
      instanceId: 'users-1',
      registryUrl: 'https://registry.internal:8501',
      version: '2.0.0',
      zone: 'b',
      weight: 3,
      tags: ['blue', 'canary'],
      labels: { team: 'identity', tier: 'gold' },
      ttlMs: 3_000,
      deregisterAfterMs: 30_000,
      drainMs: 250,
      logLevel: 'warn',
      metrics: false,
      trellisPage: false,
      client: { strategy: 'round-robin', transport: 'undici', attemptTimeoutMs: false, deadlineMs: 2_000 },
      discovery: { failoverDir: '/var/cache/users', panicThreshold: 0.25, recoveryGraceMs: 5_000 },
    });
  });

  it('leaves alone variables that are not settings, and unset or empty ones', () => {
    expect(fromEnv({ TRELLIS_SOMETHING_ELSE: 'x', PATH: '/bin', PORT: '', HOST: '  ' })).toEqual({ service: 'users' });
  });

  it('names the variable, what it allows and what it got', () => {
    const cases: Array<[Record<string, string>, string, string]> = [
      [{ TRELLIS_WEIGHT: 'abc' }, 'TRELLIS_WEIGHT', 'must be an integer from 0 to 1000000, got "abc"'],
      [{ TRELLIS_WEIGHT: '1.5' }, 'TRELLIS_WEIGHT', 'must be an integer from 0 to 1000000, got "1.5"'],
      [{ PORT: '65536' }, 'PORT', 'must be an integer from 0 to 65535, got "65536"'],
      [
        { TRELLIS_TTL_MS: '10s' },
        'TRELLIS_TTL_MS',
        'must be an integer from 100 to 86400000 (milliseconds), got "10s"',
      ],
      [{ TRELLIS_DEREGISTER_AFTER_MS: '0' }, 'TRELLIS_DEREGISTER_AFTER_MS', 'must be an integer from 1 to 86400000'],
      [{ TRELLIS_DRAIN_MS: '-5' }, 'TRELLIS_DRAIN_MS', 'must be an integer from 0 to 600000'],
      [
        { TRELLIS_LOG_LEVEL: 'verbose' },
        'TRELLIS_LOG_LEVEL',
        'must be one of fatal, error, warn, info, debug, trace, silent',
      ],
      [{ TRELLIS_METRICS: 'off' }, 'TRELLIS_METRICS', 'must be true or false'],
      [{ TRELLIS_PAGE: 'no' }, 'TRELLIS_PAGE', 'must be true or false'],
      [{ TRELLIS_LABELS: 'team' }, 'TRELLIS_LABELS', 'must be key=value pairs separated by commas, got "team"'],
      [{ TRELLIS_CLIENT_STRATEGY: 'fastest' }, 'TRELLIS_CLIENT_STRATEGY', 'must be one of round-robin, random'],
      [{ TRELLIS_CLIENT_TRANSPORT: 'fetch' }, 'TRELLIS_CLIENT_TRANSPORT', 'must be one of axios, undici'],
      [{ TRELLIS_CLIENT_ATTEMPT_TIMEOUT_MS: '0' }, 'TRELLIS_CLIENT_ATTEMPT_TIMEOUT_MS', 'or false for none, got "0"'],
      [{ TRELLIS_CLIENT_DEADLINE_MS: 'soon' }, 'TRELLIS_CLIENT_DEADLINE_MS', 'must be an integer from 1 to 86400000'],
      [
        { TRELLIS_DISCOVERY_PANIC_THRESHOLD: '1.5' },
        'TRELLIS_DISCOVERY_PANIC_THRESHOLD',
        'must be a number from 0 to 1',
      ],
      [{ TRELLIS_DISCOVERY_RECOVERY_GRACE_MS: '-1' }, 'TRELLIS_DISCOVERY_RECOVERY_GRACE_MS', 'must be an integer'],
    ];
    for (const [env, variable, problem] of cases) {
      const error = refusal(() => fromEnv(env));
      expect([error.field, error.problem]).toEqual([variable, expect.stringContaining(problem)]);
    }
  });

  it('refuses a registry URL that no registry client would take, naming TRELLIS_REGISTRY_URL', () => {
    for (const url of [
      'localhost:8500',
      'ftp://registry:8500',
      'http://',
      'not a url',
      'etcd://127.0.0.1',
      'etcd://a:2379,',
    ]) {
      const error = refusal(() => fromEnv({ TRELLIS_REGISTRY_URL: url }));
      expect(error.field).toBe('TRELLIS_REGISTRY_URL');
      expect(error.problem).toBe(
        `must be an http:// or https:// URL with a host (e.g. http://127.0.0.1:8500) or etcd://host:port[,host:port...], got ${JSON.stringify(url)}`,
      );
    }
  });

  it('takes an etcd cluster as the registry URL', () => {
    const url = 'etcd://127.0.0.1:2379,127.0.0.1:22379';
    expect(fromEnv({ TRELLIS_REGISTRY_URL: url }).registryUrl).toBe(url);
  });

  it('agrees with appOptionsFromEnv, which reads the same variables alone', () => {
    const env = { TRELLIS_WEIGHT: '0', TRELLIS_CLIENT_STRATEGY: 'random', TRELLIS_FAILOVER_DIR: '/tmp/f' };
    expect(appOptionsFromEnv(env)).toEqual({
      weight: 0,
      client: { strategy: 'random' },
      discovery: { failoverDir: '/tmp/f' },
    });
    expect(fromEnv(env)).toEqual({ service: 'users', ...appOptionsFromEnv(env) });
    expect(refusal(() => appOptionsFromEnv({ TRELLIS_REGISTRY_URL: 'x' })).field).toBe('TRELLIS_REGISTRY_URL');
  });
});
