import { ConfigError } from '@trellis/core';
import { routingRulesSchema, strategyNames, type RoutingRules, type StrategyName } from '@trellis/loadbalancer';
import {
  checkCircuitBreakerConfig,
  checkHedgingLimits,
  checkRetryBudgetOptions,
  checkRetryLimits,
  checkTimeoutMs,
} from '@trellis/resilience';
import { z } from 'zod';
import { faultRulesSchema, type FaultRule } from './fault-injection.js';

/** A retry budget as data: `RetryBudget`'s options. */
export interface RetryBudgetRules {
  /** Retries allowed as a share of calls over the last `ttlMs`, from 0 to 1; default 0.2. */
  readonly retryShare?: number;
  /** Retries allowed per second however few calls are made, >= 0; default 10. */
  readonly minRetriesPerSecond?: number;
  /** How long a call or a retry counts, in ms, >= 1000; default 10 000. */
  readonly ttlMs?: number;
}

/** Retries as data: the plain fields of `RetryOptions`. */
export interface RetryRules {
  /** Attempts in all, the first included, an integer >= 1; default 3. */
  readonly maxAttempts?: number;
  /** Cap of the first backoff in ms, >= 0; default 25. */
  readonly backoffBaseMs?: number;
  /** Largest backoff cap in ms, >= backoffBaseMs; default 250. */
  readonly backoffMaxMs?: number;
  /** The budget retries draw from; `false` for none (not advised). */
  readonly budget?: RetryBudgetRules | false;
}

/** Hedged requests as data: the plain fields of `HedgingOptions`. */
export interface HedgingRules {
  /** A fixed delay before the second attempt, in ms, > 0; without it, the `percentile` of recent latencies. */
  readonly delayMs?: number;
  /** The latency percentile after which a call is hedged, strictly between 0 and 1; default 0.95. */
  readonly percentile?: number;
  /** Calls recorded before the percentile is trusted, an integer >= 1; default 20. */
  readonly minSamples?: number;
  /** The window the percentile is taken over, in ms, > 0; default 10 000. */
  readonly windowMs?: number;
  /** The budget hedges draw from; default a share of 0.05 and 1 per second. */
  readonly budget?: RetryBudgetRules;
}

/** The thresholds of the per-instance breakers, as data: the plain fields of `CircuitBreakerConfig`. */
export interface BreakerRules {
  /** Share of failed calls at or above which a breaker opens, in (0, 1]; default 0.5. */
  readonly failureRateThreshold?: number;
  /** Calls the window must hold before it can open, an integer >= 1; default 20. */
  readonly minimumCalls?: number;
  /** The rolling window, in ms, > 0; default 10 000. */
  readonly windowMs?: number;
  /** Slices of the window, an integer from 1 to 1000; default 10. */
  readonly windowBuckets?: number;
  /** How long an open breaker refuses calls before a probe, in ms, > 0; default 10 000. */
  readonly resetTimeoutMs?: number;
  /** The longest open duration after failed probes, in ms, >= resetTimeoutMs; default resetTimeoutMs. */
  readonly backoffMaxMs?: number;
  /** Calls let through while half-open, an integer from 1 to 1000; default 1. */
  readonly probes?: number;
  /** Probes that must succeed to close, an integer from 1 to probes; default probes. */
  readonly probeSuccessThreshold?: number;
  /** A success this slow (ms, > 0) counts as a failure; default none. */
  readonly slowCallMs?: number;
}

/**
 * The governance of the calls to one service, as plain data (from a rules store, a file): what
 * `ServiceClient.applyRules` applies to the client's running stack. Every field is
 * optional: one left out keeps what the client was built with (its options, else their
 * defaults). Within `retry`, `hedging`, `breaker` and a budget, a field left out likewise keeps
 * the client's own; `routing` and `faults` replace the client's whole table.
 *
 * @example
 * const rules: ClientRules = {
 *   routing: { default: { split: [{ subset: { version: 'v1' }, weight: 90 }, { subset: { version: 'v2' }, weight: 10 }] } },
 *   retry: { maxAttempts: 2, budget: { retryShare: 0.1 } },
 *   attemptTimeoutMs: 2_000,
 * };
 */
export interface ClientRules {
  /** How an instance is picked among the routed, healthy ones, by name; default the client's. */
  readonly strategy?: StrategyName;
  /** Routing rules and canary splits (@trellis/loadbalancer's); default the client's `rules`. */
  readonly routing?: RoutingRules;
  /** Retries; `false` keeps only failover (a refused connection goes to another instance). */
  readonly retry?: RetryRules | false;
  /** Each attempt's time limit in ms, > 0; `false` for none. Default the client's (10 000). */
  readonly attemptTimeoutMs?: number | false;
  /** The whole call's time limit in ms, retries included, > 0; `false` for none. Default the client's (none). */
  readonly deadlineMs?: number | false;
  /** Hedged requests; `false` for none. Default the client's (none). */
  readonly hedging?: HedgingRules | false;
  /** The thresholds of this service's per-instance breakers; default the breaker registry's. */
  readonly breaker?: BreakerRules;
  /** Fault injection (see {@link FaultRule}); default the client's (none). */
  readonly faults?: readonly FaultRule[];
}

// The range checks are the policies' own, run on the fields given: a check names the field
// below a marker prefix, and the issue takes the rest of the path.
const marker = '\u0000';

function checkedBy<T>(
  check: (value: T, prefix: string) => void,
): (value: unknown, ctx: z.RefinementCtx<unknown>) => void {
  return (value, ctx) => {
    try {
      check(value as T, marker);
    } catch (error) {
      if (!ConfigError.is(error)) throw error;
      const below = error.field.startsWith(`${marker}.`) ? error.field.slice(marker.length + 1) : '';
      ctx.addIssue({ code: 'custom', path: below === '' ? [] : below.split('.'), message: error.problem });
    }
  };
}

/**
 * `false`, or what `schema` accepts. Not a zod union, whose failure would name only the field
 * ("Invalid input"): the object's own problem is reported, with its path.
 */
function falseOr<T>(schema: z.ZodType<T>, what: string): z.ZodType<T | false> {
  const kind = what.startsWith('a number') ? 'number' : 'object';
  return z.unknown().transform((value, ctx): T | false => {
    if (value === false) return false;
    if (
      kind === 'number'
        ? typeof value !== 'number'
        : typeof value !== 'object' || value === null || Array.isArray(value)
    ) {
      ctx.addIssue({ code: 'custom', message: `must be false or ${what}` });
      return z.NEVER;
    }
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    for (const issue of result.error.issues) ctx.addIssue({ ...issue });
    return z.NEVER;
  });
}

const number = z.number({ error: 'must be a number' });
const msSchema = number.superRefine(checkedBy<number>((value) => checkTimeoutMs(value, marker)));

const budgetSchema = z
  .strictObject({ retryShare: number.optional(), minRetriesPerSecond: number.optional(), ttlMs: number.optional() })
  .superRefine(checkedBy(checkRetryBudgetOptions));

const retrySchema = z
  .strictObject({
    maxAttempts: number.optional(),
    backoffBaseMs: number.optional(),
    backoffMaxMs: number.optional(),
    budget: falseOr(budgetSchema, 'a retry budget ({ retryShare, minRetriesPerSecond, ttlMs })').optional(),
  })
  .superRefine(checkedBy(checkRetryLimits));

const hedgingSchema = z
  .strictObject({
    delayMs: number.optional(),
    percentile: number.optional(),
    minSamples: number.optional(),
    windowMs: number.optional(),
    budget: budgetSchema.optional(),
  })
  .superRefine(checkedBy(checkHedgingLimits));

const breakerSchema = z
  .strictObject({
    failureRateThreshold: number.optional(),
    minimumCalls: number.optional(),
    windowMs: number.optional(),
    windowBuckets: number.optional(),
    resetTimeoutMs: number.optional(),
    backoffMaxMs: number.optional(),
    probes: number.optional(),
    probeSuccessThreshold: number.optional(),
    slowCallMs: number.optional(),
  })
  .superRefine(checkedBy(checkCircuitBreakerConfig));

const strategySchema = z.enum(strategyNames as [StrategyName, ...StrategyName[]], {
  error: `must be one of ${strategyNames.join(', ')}`,
});

/**
 * The zod schema of {@link ClientRules}: strict (an unknown field is refused by its name), and
 * every number checked with the range the policy's own constructor enforces. Compose it into a
 * larger document (`client: clientRulesSchema.optional()`); {@link parseClientRules} uses it.
 */
export const clientRulesSchema: z.ZodType<ClientRules> = z.strictObject(
  {
    strategy: strategySchema.optional(),
    routing: routingRulesSchema.optional(),
    retry: falseOr(retrySchema, 'retry options ({ maxAttempts, backoffBaseMs, backoffMaxMs, budget })').optional(),
    attemptTimeoutMs: falseOr(msSchema, 'a number of milliseconds').optional(),
    deadlineMs: falseOr(msSchema, 'a number of milliseconds').optional(),
    hedging: falseOr(
      hedgingSchema,
      'hedging options ({ delayMs, percentile, minSamples, windowMs, budget })',
    ).optional(),
    breaker: breakerSchema.optional(),
    faults: faultRulesSchema.optional(),
  },
  { error: 'must be an object of client rules' },
) as unknown as z.ZodType<ClientRules>;

/**
 * Validates client rules, given as an object or as JSON text.
 * @throws ConfigError whose `field` is the dotted path of the first problem, e.g.
 *   "retry.budget.retryShare" or "routing.default.split[1].weight"; an unknown key is named
 *   itself ("retry.maxAtempts"); "rules" for JSON that does not parse.
 * @example
 * const rules = parseClientRules('{"retry": {"maxAttempts": 2}, "attemptTimeoutMs": 2000}');
 * users.applyRules(rules, 7);
 */
export function parseClientRules(input: unknown): ClientRules {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input) as unknown;
    } catch (error) {
      throw new ConfigError('rules', `not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const result = clientRulesSchema.safeParse(value);
  if (result.success) return result.data;
  throw ConfigError.fromIssues(result.error.issues, '', 'rules');
}
