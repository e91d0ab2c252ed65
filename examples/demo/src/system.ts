import { fileURLToPath } from 'node:url';
import { ManagedProcess } from './managed-process.js';

// Paths from this folder (src/ in tests, dist/ when built): both sit one level below examples/demo.
const scripts = {
  registry: fileURLToPath(new URL('../../../packages/registry-server/dist/cli.js', import.meta.url)),
  users: fileURLToPath(new URL('../../users/dist/main.js', import.meta.url)),
  forum: fileURLToPath(new URL('../../forum/dist/main.js', import.meta.url)),
};

export interface SystemOptions {
  /** Registry server port; default 0 (any free port). */
  readonly registryPort?: number;
  /** Forum port; default 0. */
  readonly forumPort?: number;
  /** How many users instances to run; default 2. */
  readonly usersInstances?: number;
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
  readonly forum: ManagedProcess;
  /** Stops the forum, then the users instances, then the registry, each gracefully. */
  stop(): Promise<void>;
}

/**
 * Starts the registry server, the users instances and the forum as separate Node.js processes,
 * each told only the registry's address: the forum finds users by name.
 */
export async function startSystem(options: SystemOptions = {}): Promise<RunningSystem> {
  const started: ManagedProcess[] = [];
  const output = options.output ?? ((line: string) => console.log(line));
  const stopAll = async (): Promise<void> => {
    // Reverse start order: callers first, the registry last.
    const [registry, ...rest] = started;
    const forum = rest.find((p) => p.name === 'forum');
    if (forum !== undefined) await forum.stop();
    await Promise.all(rest.filter((p) => p !== forum).map((p) => p.stop()));
    if (registry !== undefined) await registry.stop();
  };
  try {
    const registry = await startRegistry({ ...options, output });
    started.push(registry);

    const env = (port: number): Record<string, string> => ({
      HOST: '127.0.0.1',
      PORT: String(port),
      TRELLIS_REGISTRY_URL: registry.url,
      TRELLIS_LOG_LEVEL: options.logLevel ?? 'warn',
      TRELLIS_DRAIN_MS: String(options.drainMs ?? 1_000),
      ...options.serviceEnv,
    });
    const users = await Promise.all(
      Array.from({ length: options.usersInstances ?? 2 }, (_, i) =>
        ManagedProcess.start({ name: `users-${i + 1}`, script: scripts.users, env: env(0), output }),
      ),
    );
    started.push(...users);

    const forum = await ManagedProcess.start({
      name: 'forum',
      script: scripts.forum,
      env: env(options.forumPort ?? 0),
      output,
    });
    started.push(forum);
    return { registry, users, forum, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
