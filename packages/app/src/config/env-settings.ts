import { ConfigError } from '@trellis/core';
import { settingsSchema, type Settings } from './settings-schema.js';
import { settingsError } from './settings-error.js';

/** The environment, as `process.env` holds it. */
export type Environment = Readonly<Record<string, string | undefined>>;

/** How a variable's text becomes a setting's value; the schema then checks the value. */
type Kind = 'text' | 'number' | 'boolean' | 'list' | 'pairs' | 'number-or-false';

/** One environment variable: the setting it sets (a dotted key, as in a config file) and how it is read. */
export interface EnvVariable {
  readonly variable: string;
  readonly key: string;
  readonly kind: Kind;
}

/**
 * The environment variables of the settings, in the order of the docs' table. `PORT` and `HOST`
 * carry no prefix, since platforms (Heroku, Cloud Run, Render) set them.
 */
export const envVariables: readonly EnvVariable[] = [
  { variable: 'HOST', key: 'host', kind: 'text' },
  { variable: 'PORT', key: 'port', kind: 'number' },
  { variable: 'TRELLIS_ADVERTISE_ADDRESS', key: 'advertiseAddress', kind: 'text' },
  { variable: 'TRELLIS_INSTANCE_ID', key: 'instanceId', kind: 'text' },
  { variable: 'TRELLIS_REGISTRY_URL', key: 'registryUrl', kind: 'text' },
  { variable: 'TRELLIS_REGISTRY_TOKEN', key: 'registryToken', kind: 'text' },
  { variable: 'TRELLIS_VERSION', key: 'version', kind: 'text' },
  { variable: 'TRELLIS_ZONE', key: 'zone', kind: 'text' },
  { variable: 'TRELLIS_WEIGHT', key: 'weight', kind: 'number' },
  { variable: 'TRELLIS_TAGS', key: 'tags', kind: 'list' },
  { variable: 'TRELLIS_LABELS', key: 'labels', kind: 'pairs' },
  { variable: 'TRELLIS_TTL_MS', key: 'ttlMs', kind: 'number' },
  { variable: 'TRELLIS_DEREGISTER_AFTER_MS', key: 'deregisterAfterMs', kind: 'number' },
  { variable: 'TRELLIS_DRAIN_MS', key: 'drainMs', kind: 'number' },
  { variable: 'TRELLIS_SHUTDOWN_TIMEOUT_MS', key: 'shutdownTimeoutMs', kind: 'number' },
  { variable: 'TRELLIS_LOG_LEVEL', key: 'logLevel', kind: 'text' },
  { variable: 'TRELLIS_METRICS', key: 'metrics', kind: 'boolean' },
  { variable: 'TRELLIS_PAGE', key: 'trellisPage', kind: 'boolean' },
  { variable: 'TRELLIS_CLIENT_STRATEGY', key: 'client.strategy', kind: 'text' },
  { variable: 'TRELLIS_CLIENT_TRANSPORT', key: 'client.transport', kind: 'text' },
  { variable: 'TRELLIS_CLIENT_ATTEMPT_TIMEOUT_MS', key: 'client.attemptTimeoutMs', kind: 'number-or-false' },
  { variable: 'TRELLIS_CLIENT_DEADLINE_MS', key: 'client.deadlineMs', kind: 'number' },
  { variable: 'TRELLIS_FAILOVER_DIR', key: 'discovery.failoverDir', kind: 'text' },
  { variable: 'TRELLIS_DISCOVERY_PANIC_THRESHOLD', key: 'discovery.panicThreshold', kind: 'number' },
  { variable: 'TRELLIS_DISCOVERY_RECOVERY_GRACE_MS', key: 'discovery.recoveryGraceMs', kind: 'number' },
];

// Text that is not a number stays text, so that the schema's message (what is allowed) applies.
const decimal = /^[+-]?(\d+\.?\d*|\.\d+)$/;

function read(variable: EnvVariable, raw: string): unknown {
  switch (variable.kind) {
    case 'text':
      return raw;
    case 'number':
      return decimal.test(raw) ? Number(raw) : raw;
    case 'number-or-false':
      if (raw.toLowerCase() === 'false') return false;
      return decimal.test(raw) ? Number(raw) : raw;
    case 'boolean': {
      const lower = raw.toLowerCase();
      return lower === 'true' ? true : lower === 'false' ? false : raw;
    }
    case 'list':
      return raw
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '');
    case 'pairs': {
      const pairs: Record<string, string> = {};
      for (const item of raw.split(',')) {
        if (item.trim() === '') continue;
        const equals = item.indexOf('=');
        if (equals <= 0) {
          throw new ConfigError(
            variable.variable,
            `must be key=value pairs separated by commas, got ${JSON.stringify(raw)}`,
          );
        }
        pairs[item.slice(0, equals).trim()] = item.slice(equals + 1).trim();
      }
      return pairs;
    }
  }
}

/**
 * The settings the environment sets, checked with the schema. Unset and empty variables are
 * left out, and so are variables that are not settings (environments carry many).
 *
 * @throws ConfigError naming the variable, with what it allows and what it got.
 * @example
 * settingsFromEnv({ TRELLIS_WEIGHT: '5', TRELLIS_CLIENT_STRATEGY: 'round-robin' });
 * // { weight: 5, client: { strategy: 'round-robin' } }
 */
export function settingsFromEnv(env: Environment): Settings {
  const values: Record<string, unknown> = {};
  const given = new Map<string, { variable: string; raw: string }>();
  for (const variable of envVariables) {
    const raw = env[variable.variable]?.trim();
    if (raw === undefined || raw === '') continue;
    const [first, second] = variable.key.split('.') as [string, string | undefined];
    const value = read(variable, raw);
    if (second === undefined) values[first] = value;
    else values[first] = { ...(values[first] as Record<string, unknown> | undefined), [second]: value };
    given.set(variable.key, { variable: variable.variable, raw });
  }
  const result = settingsSchema.safeParse(values);
  if (result.success) return result.data;
  // The error names the variable whose setting holds the field ("tags[2]" is TRELLIS_TAGS's).
  const owner = (field: string): { variable: string; raw: string } | undefined =>
    [...given].find(([key]) => field === key || field.startsWith(`${key}.`) || field.startsWith(`${key}[`))?.[1];
  const fieldOf = (path: readonly PropertyKey[]): string => ConfigError.fromIssues([{ path, message: '' }], '').field;
  throw settingsError(result.error.issues, {
    name: (field) => owner(field)?.variable ?? field,
    given: (path) => owner(fieldOf(path))?.raw,
  });
}
