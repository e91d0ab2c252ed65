import { MemoryRegistry } from '@trellis/registry';
import { TrellisApp, type AppOptions } from '@trellis/app';

/** The apps of a test file's tests, on a registry made fresh for each test. */
export interface TestApps {
  /** This test's registry. */
  readonly registry: MemoryRegistry;
  /** A quiet app (no logs, no drain) on this test's registry, service "users" unless given; closed after the test. */
  readonly app: (options?: Partial<AppOptions>) => TrellisApp;
}

/**
 * Registers the set-up every app test repeats: a new MemoryRegistry before each test, and after
 * it every app made closed, then the registry. Call it in a `describe` body.
 */
export function testApps(): TestApps {
  const made: TrellisApp[] = [];
  let registry: MemoryRegistry | undefined;
  beforeEach(() => {
    registry = new MemoryRegistry();
  });
  afterEach(async () => {
    await Promise.all(made.splice(0).map((a) => a.close()));
    await registry?.close();
  });
  const current = (): MemoryRegistry => {
    if (registry === undefined) throw new Error('testApps(): the registry exists inside a test only');
    return registry;
  };
  return {
    get registry() {
      return current();
    },
    app: (options = {}) => {
      const created = new TrellisApp({
        service: 'users',
        registry: current(),
        logLevel: 'silent',
        drainMs: 0,
        ...options,
      });
      made.push(created);
      return created;
    },
  };
}
