import { z } from 'zod';
import { strategyNames, type StrategyName } from '@trellis/loadbalancer';
import type { TransportName } from '@trellis/client';
import { parseRegistryUrl } from '@trellis/registry';
import type { LogLevel } from '../app-options.js';

/** Log levels of the app's logger (pino's). */
export const logLevels = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
] as const satisfies readonly LogLevel[];

const transportNames = ['axios', 'undici'] as const satisfies readonly TransportName[];

/** The longest duration a setting takes: a day. */
const dayMs = 86_400_000;

// Every check of a setting carries one message saying what is allowed, so that an error reads
// the same whether the type or the range was wrong, and whichever source the value came from.
const integer = (min: number, max: number, unit = ''): z.ZodInt => {
  const message = `must be an integer from ${min} to ${max}${unit}`;
  return z.int({ error: message }).min(min, message).max(max, message);
};
const text = (what = 'a non-empty string'): z.ZodString => {
  const message = `must be ${what} of at most 256 characters`;
  return z.string({ error: message }).trim().min(1, message).max(256, message);
};

/** A registry address, checked here so that a malformed one never reaches a registry client. */
const registryUrl = z.string({ error: 'must be an http:// or https:// URL or etcd://host:port' }).refine(
  (value) => {
    try {
      parseRegistryUrl(value);
      return true;
    } catch {
      return false;
    }
  },
  {
    error:
      'must be an http:// or https:// URL with a host (e.g. http://127.0.0.1:8500) or etcd://host:port[,host:port...]',
  },
);

// Every setting may be left out, but not given as undefined: the types say `port?: number`.
function optional<S extends Record<string, z.ZodType>>(shape: S): { [K in keyof S]: z.ZodExactOptional<S[K]> } {
  return Object.fromEntries(Object.entries(shape).map(([key, schema]) => [key, schema.exactOptional()])) as {
    [K in keyof S]: z.ZodExactOptional<S[K]>;
  };
}

const attemptTimeoutMessage = `must be an integer from 1 to ${dayMs} (milliseconds), or false for none`;

/** The zod schema of the `client` settings: how every client of the app calls. */
export const clientSettingsSchema = z.strictObject(
  optional({
    strategy: z.enum(strategyNames as [StrategyName, ...StrategyName[]], {
      error: `must be one of ${strategyNames.join(', ')}`,
    }),
    transport: z.enum(transportNames, { error: `must be one of ${transportNames.join(', ')}` }),
    attemptTimeoutMs: z.union(
      [
        z.int({ error: attemptTimeoutMessage }).min(1, attemptTimeoutMessage).max(dayMs, attemptTimeoutMessage),
        z.literal(false, { error: attemptTimeoutMessage }),
      ],
      { error: attemptTimeoutMessage },
    ),
    deadlineMs: integer(1, dayMs, ' (milliseconds)'),
  }),
  { error: 'must be an object of client settings' },
);

/** The zod schema of the `discovery` settings: how the services the app calls are found. */
export const discoverySettingsSchema = z.strictObject(
  optional({
    failoverDir: text('a directory path'),
    panicThreshold: z
      .number({ error: 'must be a number from 0 to 1' })
      .min(0, 'must be a number from 0 to 1')
      .max(1, 'must be a number from 0 to 1'),
    recoveryGraceMs: integer(0, dayMs, ' (milliseconds)'),
  }),
  { error: 'must be an object of discovery settings' },
);

/**
 * The zod schema of the app's settings: the part of {@link AppOptions} that is plain data, as a
 * `trellis.config.json` or `.yaml` file holds it and environment variables set it. Every key
 * is optional; unknown keys are refused, so that a misspelt setting is an error, not ignored.
 */
export const settingsSchema = z.strictObject(
  optional({
    host: text('a host name or IP address'),
    port: integer(0, 65_535),
    advertiseAddress: text('a host name or IP address'),
    instanceId: text(),
    registryUrl,
    registryToken: text('an ACL token'),
    version: text(),
    zone: text(),
    weight: integer(0, 1_000_000),
    tags: z.array(text(), { error: 'must be a list of non-empty strings' }).max(64, 'must list at most 64 tags'),
    labels: z
      .record(
        text('a non-empty key'),
        z.string({ error: 'must be a string' }).max(512, 'must be a string of at most 512 characters'),
        { error: 'must be an object of string values' },
      )
      .refine((labels) => Object.keys(labels).length <= 64, { error: 'must hold at most 64 labels' }),
    ttlMs: integer(100, dayMs, ' (milliseconds)'),
    deregisterAfterMs: integer(1, dayMs, ' (milliseconds)'),
    drainMs: integer(0, 600_000, ' (milliseconds)'),
    shutdownTimeoutMs: integer(0, 600_000, ' (milliseconds)'),
    logLevel: z.enum(logLevels, { error: `must be one of ${logLevels.join(', ')}` }),
    metrics: z.boolean({ error: 'must be true or false (false turns GET /metrics off)' }),
    trellisPage: z.boolean({ error: 'must be true or false (false turns GET /trellis off)' }),
    client: clientSettingsSchema,
    discovery: discoverySettingsSchema,
  }),
  { error: 'must be an object of settings' },
);

/** The app's settings as plain data: what a config file holds, each key optional. */
export type Settings = z.infer<typeof settingsSchema>;

/** The keys an object of settings may hold, by its path ("" for the top, "client", "discovery"). */
export function knownKeys(path: string): readonly string[] {
  if (path === 'client') return Object.keys(clientSettingsSchema.shape);
  if (path === 'discovery') return Object.keys(discoverySettingsSchema.shape);
  return Object.keys(settingsSchema.shape);
}
