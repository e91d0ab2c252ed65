import { ConfigError, isServiceName, type Clock } from '@trellis/core';
import type { CircuitBreakerRegistryOptions } from '@trellis/resilience';
import type { ServiceClientOptions } from '@trellis/client';
import type { DiscoveryOptions, Registry } from '@trellis/registry';
import type { TrellisMetricsOptions } from '@trellis/metrics';
import type { ConsulKv } from '@trellis/config';
import type { z } from 'zod';
import { classMetadata } from './decorators/metadata.js';
import type { Constructor } from './declarative-client/declarative-client.js';
import { settingsAsOptions } from './config/apply-settings.js';
import { settingsFromEnv } from './config/env-settings.js';
import { settingsError } from './config/settings-error.js';
import { settingsSchema, type Settings } from './config/settings-schema.js';

/** Log levels of the app's logger (pino's). */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Where log lines go: pino writes each line, newline included, with one `write`. */
export interface LogDestination {
  write(line: string): void;
}

export interface AppOptions {
  /** The service name this app registers under and callers use, e.g. "users". */
  readonly service: string;
  /** Interface to listen on; default 127.0.0.1. */
  readonly host?: string;
  /** Port to listen on; default 0 (any free port). */
  readonly port?: number;
  /** Address advertised to callers; default `host` (127.0.0.1 when listening on all interfaces). */
  readonly advertiseAddress?: string;
  /** Instance id; default `<service>-<address>-<port>`. */
  readonly instanceId?: string;
  /** The registry to use; default a `ConsulRegistry` at `registryUrl`, closed with the app. */
  readonly registry?: Registry;
  /** Registry address when `registry` is not given; default http://127.0.0.1:8500. */
  readonly registryUrl?: string;
  /**
   * ACL token for the registry at `registryUrl` (Consul's `X-Consul-Token`) and for its KV,
   * where the control plane reads rules; none by default. Give it through
   * `TRELLIS_REGISTRY_TOKEN` rather than a file that is committed.
   */
  readonly registryToken?: string;
  /** The services this app calls: each gets a `ServiceClient` bound under `clientToken(name)`. */
  readonly calls?: readonly string[];
  /**
   * Declarative clients (classes decorated with `@Client(service)`): each is bound in the
   * container under its class, and its service is called as if it were in `calls`.
   */
  readonly clients?: readonly Constructor[];
  /**
   * Controllers (classes decorated with `@Controller(prefix)`): at `start()` each is bound in the
   * container (unless bound already), resolved once, and each decorated method is served as a
   * route at prefix + path, its parameters checked (400) and its policies applied (429, 503, 504).
   */
  readonly controllers?: readonly Constructor[];
  /**
   * The services of `calls` this app cannot serve without: `GET /health/ready` answers 503 while
   * discovery's cache holds no healthy instance of one of them. Default none.
   */
  readonly critical?: readonly string[];
  readonly version?: string;
  readonly zone?: string;
  /**
   * Relative share of traffic for weighted strategies; default 1. 0 drains the instance: callers
   * send it no new calls while another instance of the service has a weight.
   */
  readonly weight?: number;
  readonly tags?: readonly string[];
  readonly labels?: Readonly<Record<string, string>>;
  /** Heartbeat TTL; default 10 000 ms. */
  readonly ttlMs?: number;
  /** Removal from the registry after this long unhealthy; default 60 000 ms. */
  readonly deregisterAfterMs?: number;
  /**
   * On shutdown, time between deregistering and closing the server, so that callers whose
   * caches still list this instance are served meanwhile; default 1 000 ms.
   */
  readonly drainMs?: number;
  /**
   * On shutdown, once the server stops taking connections, how long the requests in flight may
   * take to finish; the connections still open then are cut, and a warning says how many.
   * Default 10 000 ms.
   */
  readonly shutdownTimeoutMs?: number;
  /**
   * How every client of this app calls: strategy, routing rules, retry, timeouts, filters.
   * Default P2C over peak EWMA, `Retry`'s defaults, a 10 s attempt timeout.
   */
  readonly client?: Omit<ServiceClientOptions, 'service' | 'discovery' | 'caller' | 'breakers' | 'clock' | 'telemetry'>;
  /** Thresholds of the per-instance circuit breakers the app's clients share. */
  readonly breaker?: Omit<CircuitBreakerRegistryOptions, 'clock'>;
  /** How services this app calls are discovered: panic threshold, failover directory, watch timing. */
  readonly discovery?: Omit<DiscoveryOptions, 'clock'>;
  /**
   * The app's metrics, served on `GET /metrics`: its served requests, every call of its clients,
   * and the process. On by default (a service nobody can see is not run in production); `false`
   * turns them off, and the options give a registry of your own or leave out process metrics.
   */
  readonly metrics?: false | TrellisMetricsOptions;
  /**
   * `GET /trellis`, the app's governance status (JSON, or a page for a browser): its instance
   * and registration, each called service's instances with health, breaker state, load and
   * recent calls, retry budget left, rules in force. On by default; `false` turns it off, since
   * it shows internals (instance addresses, rules) to whoever can reach the port.
   */
  readonly trellisPage?: boolean;
  /**
   * Live governance rules from the registry's KV (see docs/rules.md): the app follows
   * `trellis/rules/<service>` of each service it calls (its clients apply the `client` section
   * within a second of a change) and of its own (`limits`), and reports the versions it runs
   * under `trellis/running/<instance-id>`. On by default when the app talks to a Consul-compatible
   * registry: the one at `registryUrl`, or a `registry` that is a `ConsulRegistry`. `false` turns
   * it off; `{ kv }` gives a KV client of your own (another address, an ACL token), closed by you.
   */
  readonly controlPlane?: false | { readonly kv: ConsulKv };
  /**
   * The service's own settings, typed by a zod object schema, from layers: the schema's
   * defaults < `file` (JSON) < the environment (`FORUM_PAGE_SIZE` for `pageSize`) < the registry's
   * KV `config/application/`, `config/<service>/`, `config/<service>,<profile>/`, followed live
   * (see docs/rules.md#typed-configuration). Read at start, before the controllers are resolved;
   * the `ServiceConfig` is `app.config` and is bound under `AppTokens.config`.
   */
  readonly config?: AppConfigOptions;
  /** Default "info". */
  readonly logLevel?: LogLevel;
  /**
   * Where the app's log lines (JSON, one per line) are written; default standard output. Any
   * object with `write(line)`: a file stream, or a collector in tests.
   */
  readonly logDestination?: LogDestination;
  readonly clock?: Clock;
}

/** What {@link AppOptions.config} takes: the schema, and where else to look. */
export interface AppConfigOptions {
  readonly schema: z.ZodObject;
  /** A profile (`prod`, `eu`): `config/<service>,<profile>/` wins over `config/<service>/`. */
  readonly profile?: string;
  /** A JSON file of the properties. */
  readonly file?: string;
  /** The variables' prefix; default the service upper-cased with `_` for other characters, then `_`. */
  readonly envPrefix?: string;
}

/**
 * App options from environment variables alone, the way a process is configured in a deployment:
 * `PORT`, `HOST`, `TRELLIS_REGISTRY_URL`, `TRELLIS_INSTANCE_ID`, `TRELLIS_ADVERTISE_ADDRESS`,
 * `TRELLIS_VERSION`, `TRELLIS_ZONE`, `TRELLIS_WEIGHT`, `TRELLIS_LOG_LEVEL`, `TRELLIS_DRAIN_MS`,
 * `TRELLIS_TTL_MS`, `TRELLIS_DEREGISTER_AFTER_MS`, `TRELLIS_FAILOVER_DIR` and the others listed
 * in docs/configuration.md, checked with the same schema as a config file. Unset and empty
 * variables are left out, so that the app's defaults apply. Spread over other options, a
 * `client` or `discovery` object replaces theirs whole: {@link readAppOptions} merges them,
 * reads the config file too, and is the better model for a main module.
 *
 * @throws ConfigError naming the variable when a value is malformed.
 * @example
 * const app = new TrellisApp({ service: 'users', ...appOptionsFromEnv(process.env) });
 */
export function appOptionsFromEnv(env: Readonly<Record<string, string | undefined>>): Partial<AppOptions> {
  return settingsAsOptions(settingsFromEnv(env));
}

// The options that are plain data, checked with the settings' schema: one range for each,
// whether it comes from code, a file or the environment.
const plainOptions = [
  'host',
  'port',
  'advertiseAddress',
  'instanceId',
  'registryUrl',
  'registryToken',
  'version',
  'zone',
  'weight',
  'tags',
  'labels',
  'ttlMs',
  'deregisterAfterMs',
  'drainMs',
  'shutdownTimeoutMs',
  'logLevel',
  'trellisPage',
] as const satisfies ReadonlyArray<keyof Settings & keyof AppOptions>;

/** Checks the options a constructor cannot work without; throws ConfigError naming the field. */
export function validateAppOptions(options: AppOptions): void {
  if (!isServiceName(options.service)) {
    throw new ConfigError(
      'service',
      `must be a name of letters, digits, "-", "_" or ".", got ${JSON.stringify(options.service)}`,
    );
  }
  const plain: Record<string, unknown> = {};
  for (const key of plainOptions) if (options[key] !== undefined) plain[key] = options[key];
  const result = settingsSchema.safeParse(plain);
  if (!result.success) {
    throw settingsError(result.error.issues, {
      name: (field) => field,
      given: (path) => path.reduce<unknown>((v, key) => (v as Record<PropertyKey, unknown> | undefined)?.[key], plain),
    });
  }
  (options.clients ?? []).forEach((type: unknown, i) => {
    if (typeof type !== 'function' || classMetadata(type)?.client === undefined) {
      throw new ConfigError(`clients[${i}]`, 'must be a class decorated with @Client(service)');
    }
  });
  const controllers: unknown = options.controllers;
  if (controllers !== undefined && !Array.isArray(controllers)) {
    throw new ConfigError('controllers', 'must be an array of classes decorated with @Controller(prefix)');
  }
  (options.controllers ?? []).forEach((type: unknown, i) => {
    if (typeof type !== 'function' || classMetadata(type)?.controller === undefined) {
      const got =
        typeof type === 'function' ? `class ${type.name || '(anonymous)'}` : (JSON.stringify(type) ?? String(type));
      throw new ConfigError(`controllers[${i}]`, `must be a class decorated with @Controller(prefix), got ${got}`);
    }
  });
  if (options.critical !== undefined) {
    if (!Array.isArray(options.critical)) throw new ConfigError('critical', 'must be a list of service names');
    const calls: readonly unknown[] = options.calls ?? [];
    for (const service of options.critical as readonly unknown[]) {
      if (!calls.includes(service)) {
        throw new ConfigError(
          'critical',
          `names ${JSON.stringify(service)}, which is not in calls (${calls.map((c) => JSON.stringify(c)).join(', ') || 'none'}); a critical dependency is a service the app calls`,
        );
      }
    }
  }
  const destination: unknown = options.logDestination;
  if (
    destination !== undefined &&
    (typeof destination !== 'object' ||
      destination === null ||
      !('write' in destination) ||
      typeof destination.write !== 'function')
  ) {
    throw new ConfigError('logDestination', 'must be an object with a write(line) method, such as a stream');
  }
}
