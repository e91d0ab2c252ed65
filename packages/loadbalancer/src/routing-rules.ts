import { ConfigError } from '@trellis/core';
import { z } from 'zod';
import { callMatchSchema, type CallMatch } from './call-match.js';
import { parseWith } from './config-schema.js';

/**
 * A subset of a service's instances, by what they advertise. Every field given must hold;
 * an empty subset is every instance.
 */
export interface Subset {
  /** Tags the instance must all carry. */
  readonly tags?: readonly string[];
  /** `meta.version`, e.g. "v2". */
  readonly version?: string;
  /** `meta.zone`. */
  readonly zone?: string;
  /** `meta.labels` entries the instance must all have. */
  readonly labels?: Readonly<Record<string, string>>;
}

/** One share of a weighted split: `weight` out of the split's total goes to `subset`. */
export interface WeightedSubset {
  readonly subset: Subset;
  /** A share, relative to the others' (90 and 10 make a 90/10 split); 0 sends nothing. */
  readonly weight: number;
}

/** Where matched calls go: one subset (`to`), or a weighted `split` across subsets; not both. */
export interface Destination {
  readonly to?: Subset;
  readonly split?: readonly WeightedSubset[];
}

/** A routing rule: calls that `match` go to its destination. */
export interface Route extends Destination {
  /** A name for logs and errors. */
  readonly name?: string;
  /** Which calls the route takes; absent, every call. */
  readonly match?: CallMatch;
}

/**
 * A service's routing table: the first route whose match holds decides the destination;
 * calls no route matches go to `default`, or to every instance when there is no default.
 *
 * @example
 * const rules: RoutingRules = {
 *   routes: [{ name: 'testers', match: { headers: { 'x-canary': 'always' } }, to: { version: 'v2' } }],
 *   default: { split: [{ subset: { version: 'v1' }, weight: 90 }, { subset: { version: 'v2' }, weight: 10 }] },
 * };
 */
export interface RoutingRules {
  readonly routes?: readonly Route[];
  readonly default?: Destination;
}

/** Most routes a table may hold: every call scans them in order. */
export const maxRoutes = 1_000;

const nonEmpty = z.string().min(1, 'must not be empty');

/** The zod schema of a {@link Subset}. */
export const subsetSchema = z.strictObject({
  tags: z.array(nonEmpty).optional(),
  version: nonEmpty.optional(),
  zone: nonEmpty.optional(),
  labels: z.record(nonEmpty, z.string()).optional(),
});

const weightedSubsetSchema = z.strictObject({
  subset: subsetSchema,
  weight: z.number().finite('must be a finite number').min(0, 'must be >= 0'),
});

const destinationShape = {
  to: subsetSchema.optional(),
  split: z.array(weightedSubsetSchema).min(1, 'must list at least one subset').max(100).optional(),
};

interface DestinationShape {
  readonly to?: unknown;
  readonly split?: ReadonlyArray<{ readonly weight: number }> | undefined;
}

function checkDestination<T extends DestinationShape>(destination: T, ctx: z.RefinementCtx<T>): void {
  if ((destination.to === undefined) === (destination.split === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['to'], message: 'give exactly one of "to" or "split"' });
    return;
  }
  if (destination.split !== undefined && !destination.split.some((s) => s.weight > 0)) {
    ctx.addIssue({ code: 'custom', path: ['split'], message: 'at least one weight must be above 0' });
  }
}

/** The zod schema of a {@link Destination}. */
export const destinationSchema = z.strictObject(destinationShape).superRefine(checkDestination);

/** The zod schema of a {@link Route}. */
export const routeSchema = z
  .strictObject({ name: nonEmpty.optional(), match: callMatchSchema.optional(), ...destinationShape })
  .superRefine(checkDestination);

/** The zod schema of {@link RoutingRules}, for rules arriving as JSON (from KV, a file). */
export const routingRulesSchema = z.strictObject({
  routes: z.array(routeSchema).max(maxRoutes, `at most ${maxRoutes} routes`).optional(),
  default: destinationSchema.optional(),
});

/**
 * Validates routing rules, given as an object or as JSON text.
 * @throws ConfigError whose `field` is the path of the first problem, e.g.
 *   "routes[1].split[0].weight"; "rules" for JSON that does not parse.
 * @example
 * const rules = parseRoutingRules(await kv.get('trellis/routes/users'));
 */
export function parseRoutingRules(input: unknown): RoutingRules {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input) as unknown;
    } catch (error) {
      throw new ConfigError('rules', `not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError('rules', 'must be an object with "routes" and/or "default"');
  }
  return parseWith(routingRulesSchema, value, '') as RoutingRules;
}
