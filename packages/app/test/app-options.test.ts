import { ConfigError } from '@trellis/core';
import { appOptionsFromEnv, TrellisApp } from '@trellis/app';
import { MemoryRegistry } from '@trellis/registry';

describe('appOptionsFromEnv', () => {
  it('reads the documented variables', () => {
    expect(
      appOptionsFromEnv({
        PORT: '4001',
        HOST: '0.0.0.0',
        TRELLIS_REGISTRY_URL: 'http://127.0.0.1:8500',
        TRELLIS_INSTANCE_ID: 'users-1',
        TRELLIS_ADVERTISE_ADDRESS: '10.0.0.5',
        TRELLIS_VERSION: '2.0.0',
        TRELLIS_ZONE: 'b',
        TRELLIS_WEIGHT: '3',
        TRELLIS_DRAIN_MS: '250',
        TRELLIS_TTL_MS: '3000',
        TRELLIS_DEREGISTER_AFTER_MS: '30000',
        TRELLIS_FAILOVER_DIR: '/var/cache/users',
        TRELLIS_LOG_LEVEL: 'warn',
      }),
    ).toEqual({
      port: 4001,
      host: '0.0.0.0',
      registryUrl: 'http://127.0.0.1:8500',
      instanceId: 'users-1',
      advertiseAddress: '10.0.0.5',
      version: '2.0.0',
      zone: 'b',
      weight: 3,
      drainMs: 250,
      ttlMs: 3_000,
      deregisterAfterMs: 30_000,
      discovery: { failoverDir: '/var/cache/users' },
      logLevel: 'warn',
    });
  });

  it('reads a weight of 0, which drains the instance, and a TrellisApp takes it', async () => {
    expect(appOptionsFromEnv({ TRELLIS_WEIGHT: '0' })).toEqual({ weight: 0 });
    const registry = new MemoryRegistry();
    const app = new TrellisApp({ service: 'users', registry, ...appOptionsFromEnv({ TRELLIS_WEIGHT: '0' }) });
    try {
      const { instance } = await app.start();
      expect(instance.meta.weight).toBe(0);
      expect((await registry.list('users')).map((i) => i.meta.weight)).toEqual([0]);
    } finally {
      await app.close();
      await registry.close();
    }
  });

  it('leaves unset and empty variables out, so defaults apply', () => {
    expect(appOptionsFromEnv({ PORT: '', HOST: '  ', OTHER: 'x' })).toEqual({});
  });

  it('names the variable that is malformed', () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ PORT: 'eighty' }, 'PORT'],
      [{ PORT: '65536' }, 'PORT'],
      [{ TRELLIS_WEIGHT: '-1' }, 'TRELLIS_WEIGHT'],
      [{ TRELLIS_DRAIN_MS: '-5' }, 'TRELLIS_DRAIN_MS'],
      [{ TRELLIS_TTL_MS: '10s' }, 'TRELLIS_TTL_MS'],
      [{ TRELLIS_DEREGISTER_AFTER_MS: '0' }, 'TRELLIS_DEREGISTER_AFTER_MS'],
      [{ TRELLIS_LOG_LEVEL: 'verbose' }, 'TRELLIS_LOG_LEVEL'],
    ];
    for (const [env, field] of cases) {
      expect(() => appOptionsFromEnv(env)).toThrow(ConfigError);
      try {
        appOptionsFromEnv(env);
      } catch (error) {
        expect((error as ConfigError).field).toBe(field);
      }
    }
    expect(() => appOptionsFromEnv({ PORT: 'eighty' })).toThrow(
      'invalid configuration "PORT": must be an integer from 0 to 65535, got "eighty"',
    );
  });
});
