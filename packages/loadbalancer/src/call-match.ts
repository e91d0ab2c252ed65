import type { Call } from '@trellis/core';
import { z } from 'zod';
import { parseWith } from './config-schema.js';
import { headerValue } from './hash-keys.js';

/**
 * How a string is matched: a plain string is an exact match; `regex` must match the whole
 * value (it is anchored, as in Istio and Envoy).
 */
export type StringMatch =
  string | { readonly exact: string } | { readonly prefix: string } | { readonly regex: string };

/** How a header is matched: as a {@link StringMatch}, or by mere presence or absence. */
export type HeaderMatch = StringMatch | { readonly present: boolean };

/**
 * Which calls a routing rule or a fault applies to. Every field given must match; an empty
 * match matches every call.
 *
 * @example
 * const match: CallMatch = { method: 'GET', path: { prefix: '/users/' }, headers: { 'x-canary': 'always' } };
 */
export interface CallMatch {
  /** The target service's name. */
  readonly service?: string;
  /** The calling service's own name (the `caller` option of the load balancer or filter). */
  readonly caller?: string;
  /** One method or any of several, e.g. "GET" or ["PUT", "DELETE"]; case does not matter. */
  readonly method?: string | readonly string[];
  /** The path without its query string. */
  readonly path?: StringMatch;
  /** Request headers by name (case does not matter); every one listed must match. */
  readonly headers?: Readonly<Record<string, HeaderMatch>>;
}

const nonEmpty = z.string().min(1, 'must not be empty');
const maxPatternLength = 1_000;

function validRegex(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}

const exactPrefixRegex = z
  .strictObject({
    exact: z.string().optional(),
    prefix: z.string().optional(),
    regex: z
      .string()
      .max(maxPatternLength)
      .refine(validRegex, { message: 'not a valid regular expression' })
      .optional(),
  })
  .refine((m) => [m.exact, m.prefix, m.regex].filter((v) => v !== undefined).length === 1, {
    message: 'give exactly one of "exact", "prefix" or "regex"',
  });

/** The zod schema of a {@link StringMatch}. */
export const stringMatchSchema = z.union([z.string(), exactPrefixRegex], {
  error: 'must be a string, { exact }, { prefix } or { regex }',
});

const headerMatchSchema = z.union([z.string(), z.strictObject({ present: z.boolean() }), exactPrefixRegex], {
  error: 'must be a string, { exact }, { prefix }, { regex } or { present }',
});

/** The zod schema of a {@link CallMatch}; unknown keys are refused, so that a typo is not ignored. */
export const callMatchSchema = z.strictObject({
  service: nonEmpty.optional(),
  caller: nonEmpty.optional(),
  method: z.union([nonEmpty, z.array(nonEmpty).min(1, 'must list at least one method')]).optional(),
  path: stringMatchSchema.optional(),
  headers: z.record(nonEmpty, headerMatchSchema).optional(),
});

/** Tests one call; built once from a {@link CallMatch}, so matching allocates nothing. */
export type CallMatcher = (call: Call) => boolean;

export interface CompileMatchOptions {
  /** The calling service's own name, for `match.caller`; unset, a rule naming a caller never matches. */
  readonly caller?: string;
}

type ValueTest = (value: string) => boolean;

function valueTest(match: StringMatch): ValueTest {
  if (typeof match === 'string') return (v) => v === match;
  if ('exact' in match) return (v) => v === match.exact;
  if ('prefix' in match) return (v) => v.startsWith(match.prefix);
  const re = new RegExp(`^(?:${match.regex})$`);
  return (v) => re.test(v);
}

// The path test sees the path with its query; exact and prefix tests skip the slice.
function pathTest(match: StringMatch): ValueTest {
  const exact = typeof match === 'string' ? match : 'exact' in match ? match.exact : undefined;
  if (exact !== undefined) {
    return (p) => p.startsWith(exact) && (p.length === exact.length || p.charCodeAt(exact.length) === 63); /* ? */
  }
  if (typeof match !== 'string' && 'prefix' in match) {
    const prefix = match.prefix;
    return (p) => {
      if (!p.startsWith(prefix)) return false;
      const q = p.indexOf('?');
      return q < 0 || q >= prefix.length;
    };
  }
  const test = valueTest(match);
  return (p) => {
    const q = p.indexOf('?');
    return test(q < 0 ? p : p.slice(0, q));
  };
}

/**
 * Validates a {@link CallMatch} and builds its matcher.
 * @param field the name reported for a problem, e.g. "routes[2].match".
 * @throws ConfigError naming the field below `field` (e.g. "routes[2].match.path.regex").
 * @example
 * const isCanary = compileCallMatch({ headers: { 'x-canary': 'always' } });
 * isCanary(call); // true when the call carries x-canary: always
 */
export function compileCallMatch(match: CallMatch, options: CompileMatchOptions = {}, field = 'match'): CallMatcher {
  const valid = parseWith(callMatchSchema, match, field) as CallMatch;
  return buildMatcher(valid, options);
}

/** Builds the matcher of an already validated match. */
export function buildMatcher(match: CallMatch, options: CompileMatchOptions): CallMatcher {
  // The caller is this process's own name: fixed, so decided once here.
  if (match.caller !== undefined && match.caller !== options.caller) return () => false;
  const tests: CallMatcher[] = [];
  const service = match.service;
  if (service !== undefined) tests.push((call) => call.service === service);
  if (match.method !== undefined) {
    const methods = new Set(
      (typeof match.method === 'string' ? [match.method] : match.method).map((m) => m.toUpperCase()),
    );
    tests.push((call) => methods.has(call.method));
  }
  if (match.path !== undefined) {
    const test = pathTest(match.path);
    tests.push((call) => test(call.path));
  }
  for (const [name, headerMatch] of Object.entries(match.headers ?? {})) {
    const lower = name.toLowerCase();
    if (typeof headerMatch !== 'string' && 'present' in headerMatch) {
      const present = headerMatch.present;
      tests.push((call) => (headerValue(call.headers, lower) !== undefined) === present);
    } else {
      const test = valueTest(headerMatch);
      tests.push((call) => {
        const value = headerValue(call.headers, lower);
        return value !== undefined && test(value);
      });
    }
  }
  if (tests.length === 0) return () => true;
  if (tests.length === 1) return tests[0] as CallMatcher;
  return (call) => {
    for (const test of tests) if (!test(call)) return false;
    return true;
  };
}
