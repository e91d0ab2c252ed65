import { ConfigError } from '@trellis/core';
import { clientRulesSchema, type ClientRules } from '@trellis/client';
import { z } from 'zod';

/** The inbound rate limit of each instance: a token bucket. */
export interface RateLimitRule {
  /** Requests per second each instance serves on average; more are answered 429. */
  readonly ratePerSecond: number;
  /** Requests each instance may take at once after a quiet spell; default `max(1, ratePerSecond)`. */
  readonly burst?: number;
}

/** The inbound concurrency limit of each instance. */
export interface ConcurrencyLimitRule {
  /** Requests each instance serves at once. */
  readonly maxConcurrent: number;
  /** Requests that may wait for a slot; default 0 (answered 503 at once). */
  readonly maxQueue?: number;
  /** Longest wait in the queue before a 503; default 1 000 ms. */
  readonly queueTimeoutMs?: number;
}

/** What a service enforces on the requests it serves, per instance, beside the limits its code sets. */
export interface LimitRules {
  readonly rate?: RateLimitRule;
  readonly concurrency?: ConcurrencyLimitRule;
}

/** A gateway's routes; each is checked by the gateway's own route schema when it applies them. */
export interface GatewayRules {
  readonly routes: readonly unknown[];
}

/**
 * The governance rules of one service, the `rules` of `trellis/rules/<service>`: `client` is
 * how every caller calls the service, `limits` what the service enforces inbound, `gateway` the
 * routes of a gateway service. Every section is optional; a section left out is the code's.
 */
export interface Rules {
  readonly client?: ClientRules;
  readonly limits?: LimitRules;
  readonly gateway?: GatewayRules;
}

/** Most gateway routes a rules document may hold (the gateway's own bound). */
const maxGatewayRoutes = 500;

/** The zod schema of {@link LimitRules}. */
export const limitRulesSchema = z.strictObject({
  rate: z
    .strictObject({
      ratePerSecond: z.number().positive('must be above 0').max(1e9, 'must be at most 1e9'),
      burst: z.number().min(1, 'must be at least 1').max(1e9, 'must be at most 1e9').optional(),
    })
    .optional(),
  concurrency: z
    .strictObject({
      maxConcurrent: z.int('must be a whole number').min(1, 'must be at least 1').max(1e6, 'must be at most 1000000'),
      maxQueue: z
        .int('must be a whole number')
        .min(0, 'must be at least 0')
        .max(1e6, 'must be at most 1000000')
        .optional(),
      queueTimeoutMs: z
        .int('must be a whole number of milliseconds')
        .min(0, 'must be at least 0')
        .max(600_000, 'must be at most 600000')
        .optional(),
    })
    .optional(),
});

/** The zod schema of {@link Rules}: strict, so that an unknown field is refused by its name. */
export const rulesSchema = z.strictObject({
  client: clientRulesSchema.optional(),
  limits: limitRulesSchema.optional(),
  gateway: z
    .strictObject({
      routes: z
        .array(z.record(z.string(), z.unknown()), { error: 'must be a list of route objects' })
        .max(maxGatewayRoutes, `at most ${maxGatewayRoutes} routes`),
    })
    .optional(),
});

/**
 * Checks a rules document (an object, or JSON text).
 * @throws ConfigError whose `field` is the dotted path of the first problem, e.g.
 *   "client.retry.maxAttempts" or "limits.rate.burst"; "rules" for JSON that does not parse.
 * @example
 * const rules = parseRules({ client: { routing: { default: { to: { version: 'v1' } } } } });
 */
export function parseRules(input: unknown): Rules {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input) as unknown;
    } catch (error) {
      throw new ConfigError('rules', `not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError('rules', 'must be an object with "client", "limits" and/or "gateway"');
  }
  const result = rulesSchema.safeParse(value);
  if (!result.success) throw ConfigError.fromIssues(result.error.issues, '', 'rules');
  return result.data as Rules;
}
