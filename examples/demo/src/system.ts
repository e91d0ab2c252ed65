import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManagedProcess } from './managed-process.js';

// Paths from this folder (src/ in tests, dist/ when built): both sit one level below examples/demo.
const scripts = {
  registry: fileURLToPath(new URL('../../../packages/registry-server/dist/cli.js', import.meta.url)),
  users: fileURLToPath(new URL('../../users/dist/main.js', import.meta.url)),
  mail: fileURLToPath(new URL('../../mail/dist/main.js', import.meta.url)),
  forum: fileURLToPath(new URL('../../forum/dist/main.js', import.meta.url)),
  chat: fileURLToPath(new URL('../../chat/dist/main.js', import.meta.url)),
  gateway: fileURLToPath(new URL('../../gateway/dist/main.js', import.meta.url)),
};

/** The services of the example system, in the order they start. */
export type ServiceName = 'users' | 'mail' | 'forum' | 'chat' | 'gateway';

export interface SystemOptions {
  /** Registry server port; default 0 (any free port). */
  readonly registryPort?: number;
  /** The gateway's port, the system's one public entry; default 0. */
  readonly gatewayPort?: number;
  /** How many users instances to run; default 2. */
  readonly usersInstances?: number;
  /** How many mail instances to run; default 2. */
  readonly mailInstances?: number;
  /**
   * Which services to start, default all; users and mail are always started (the others call
   * them), the gateway only with forum, chat and mail.
   */
  readonly services?: readonly ServiceName[];
  /**
   * The folder of the services' SQLite files (`TRELLIS_DATA_DIR`: users.sqlite, mail.sqlite,
   * forum.sqlite, chat.sqlite); the instances of one service share their file. Default a new
   * temporary folder, removed by `stop()`.
   */
  readonly dataDir?: string;
  /** The services' log level; default "warn", so the demo's output stays readable. */
  readonly logLevel?: string;
  /** Milliseconds each service drains on shutdown; default 1000. */
  readonly drainMs?: number;
  /** Receives the services' log lines. */
  readonly output?: (line: string) => void;
  /** More arguments for the registry server, e.g. ["--dev"]. */
  readonly registryArgs?: readonly string[];
  /** More environment for the services, e.g. { TRELLIS_TTL_MS: "3000" }. */
  readonly serviceEnv?: Readonly<Record<string, string>>;
}

/**
 * Starts the registry server as a child process on 127.0.0.1.
 * @throws Error when it exits or prints no ready line (see {@link ManagedProcess.start}).
 */
export function startRegistry(
  options: Pick<SystemOptions, 'registryPort' | 'logLevel' | 'output' | 'registryArgs'> = {},
): Promise<ManagedProcess> {
  return ManagedProcess.start({
    name: 'registry',
    script: scripts.registry,
    args: [
      '--host',
      '127.0.0.1',
      '--port',
      String(options.registryPort ?? 0),
      '--log-level',
      options.logLevel ?? 'warn',
      ...(options.registryArgs ?? []),
    ],
    ...(options.output === undefined ? {} : { output: options.output }),
  });
}

/** The demo's processes, all on 127.0.0.1. */
export interface RunningSystem {
  readonly registry: ManagedProcess;
  readonly users: readonly ManagedProcess[];
  readonly mail: readonly ManagedProcess[];
  /** Undefined when `services` left it out. */
  readonly forum: ManagedProcess | undefined;
  readonly chat: ManagedProcess | undefined;
  readonly gateway: ManagedProcess | undefined;
  /** Every process, in start order. */
  readonly processes: readonly ManagedProcess[];
  /** Stops the gateway, then forum and chat, then users and mail, then the registry, each gracefully. */
  stop(): Promise<void>;
}

/**
 * Starts the registry server and the services as separate Node.js processes, each told only the
 * registry's address: they find each other by name. Callers start after what they call, and stop
 * before it, so that no call is made to a service that is not there yet or any more.
 */
export async function startSystem(options: SystemOptions = {}): Promise<RunningSystem> {
  const wanted = new Set<ServiceName>(options.services ?? ['users', 'mail', 'forum', 'chat', 'gateway']);
  const output = options.output ?? ((line: string) => console.log(line));
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'trellis-system-')));
  // Stopped in reverse: each tier after the tier that calls it.
  const tiers: ManagedProcess[][] = [];
  const stopAll = async (): Promise<void> => {
    for (const tier of [...tiers].reverse()) await Promise.all(tier.map((p) => p.stop()));
    if (options.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
  };
  const startTier = async (
    specs: ReadonlyArray<{ name: string; script: string; port?: number; env?: Record<string, string> }>,
  ) => {
    const tier: ManagedProcess[] = [];
    tiers.push(tier);
    // Pushed as each is ready, so that a failure of one still stops those that started.
    await Promise.all(
      specs.map(async ({ name, script, port, env: own }) => {
        tier.push(await ManagedProcess.start({ name, script, env: { ...env(port ?? 0), ...own }, output }));
      }),
    );
    return [...tier].sort((a, b) => a.name.localeCompare(b.name));
  };
  let registryUrl = '';
  const env = (port: number): Record<string, string> => ({
    HOST: '127.0.0.1',
    PORT: String(port),
    TRELLIS_REGISTRY_URL: registryUrl,
    TRELLIS_DATA_DIR: dataDir,
    TRELLIS_LOG_LEVEL: options.logLevel ?? 'warn',
    TRELLIS_DRAIN_MS: String(options.drainMs ?? 1_000),
    ...options.serviceEnv,
  });
  // The second users instance runs the next release, 1.1.0: the canary that rules can route to
  // (docs/rules.md walks through it). With no rules, callers spread over both alike.
  const instances = (service: 'users' | 'mail', count: number) =>
    Array.from({ length: count }, (_, i) => ({
      name: `${service}-${i + 1}`,
      script: scripts[service],
      env: service === 'users' ? { TRELLIS_VERSION: i % 2 === 1 ? '1.1.0' : '1.0.0', ...options.serviceEnv } : {},
    }));

  try {
    const registry = await startRegistry({ ...options, output });
    tiers.push([registry]);
    registryUrl = registry.url;

    const shared = await startTier([
      ...instances('users', options.usersInstances ?? 2),
      ...instances('mail', options.mailInstances ?? 2),
    ]);
    const apps = await startTier(
      (['forum', 'chat'] as const).filter((s) => wanted.has(s)).map((name) => ({ name, script: scripts[name] })),
    );
    const edge = wanted.has('gateway')
      ? await startTier([{ name: 'gateway', script: scripts.gateway, port: options.gatewayPort ?? 0 }])
      : [];
    const named = (name: string) => [...apps, ...edge].find((p) => p.name === name);
    return {
      registry,
      users: shared.filter((p) => p.name.startsWith('users-')),
      mail: shared.filter((p) => p.name.startsWith('mail-')),
      forum: named('forum'),
      chat: named('chat'),
      gateway: named('gateway'),
      processes: tiers.flat(),
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
