import {
  ConfigError,
  ConnectionError,
  Emitter,
  sleep,
  systemClock,
  type Call,
  type CallContext,
  type Clock,
  type Event,
  type FaultInjected,
  type Filter,
  type Reply,
  type Service,
  type ServiceInstance,
  type Stage,
  type StageEnv,
} from '@trellis/core';
import { callMatchSchema, compileCallMatch, type CallMatch, type CallMatcher } from '@trellis/loadbalancer';
import { z } from 'zod';

/** Delay a share of the matched calls. */
export interface DelayFault {
  /** Share of matched calls delayed, from 0 to 1 (0.005 is half a percent). */
  readonly share: number;
  /** How long, in ms. */
  readonly ms: number;
}

/**
 * Fail a share of the matched calls without sending them: with an HTTP `status` (the reply an
 * instance would give), or with a `connection` error ("refused": the call certainly never
 * arrived; "reset": it may have). Give exactly one of the two.
 */
export interface AbortFault {
  /** Share of matched calls aborted, from 0 to 1. */
  readonly share: number;
  readonly status?: number;
  readonly connection?: 'refused' | 'reset';
}

/**
 * One fault: calls that `match` (the same match as routing rules: service, caller, method,
 * path, headers) are delayed and/or aborted in the given shares. Delay comes first, as in
 * Envoy, so a call may be delayed and then aborted.
 *
 * @example
 * const rule: FaultRule = { match: { service: 'users', path: { prefix: '/users' } }, abort: { share: 0.05, status: 503 } };
 */
export interface FaultRule {
  /** A name for events and errors. */
  readonly name?: string;
  readonly match?: CallMatch;
  readonly delay?: DelayFault;
  readonly abort?: AbortFault;
}

export interface FaultInjectorOptions {
  /** The faults; the first rule whose match holds applies. Default none. */
  readonly rules?: readonly FaultRule[];
  /** This process's own service name, for rules that match on `caller`. */
  readonly caller?: string;
  /** Time the delays are waited on; default the clock of the stack it is put in. */
  readonly clock?: Clock;
  /** A number in [0, 1) deciding which calls are hit; default the stack's random source. */
  readonly random?: () => number;
}

/** What fault rules would do to one attempt (a dry run's sample). */
export interface FaultDecision {
  /** The rule that matched: its name or "faults[i]". */
  readonly rule: string;
  readonly delay: boolean;
  readonly abort: boolean;
}

interface CompiledRule {
  readonly name: string;
  readonly matches: CallMatcher;
  readonly delayShare: number;
  readonly delayMs: number;
  readonly abortShare: number;
  readonly abortStatus: number | undefined;
  readonly abortSent: boolean;
}

interface Table {
  readonly rules: readonly FaultRule[];
  readonly compiled: readonly CompiledRule[];
}

/** Most rules a table may hold: every attempt scans them in order. */
const maxRules = 100;
/** Longest delay accepted, in ms: one hour. */
const maxDelayMs = 3_600_000;

/**
 * Fault injection for testing resilience in a running system (Istio's and Envoy's, in
 * process): delays and aborts a configurable share of the attempts that match a rule. It is a
 * client's "fault-injection" stage (the `faults` option), just before the transport, so the
 * breaker, timeout and retry above it see the faults as real ones. It stays in @trellis/client
 * rather than with the policies because what it matches on (method, path, headers) is HTTP's.
 *
 * Rules can be replaced while calls run; {@link FaultInjector.update} swaps the whole table or
 * throws and keeps the old one.
 *
 * @throws ConfigError from the constructor for invalid rules, naming the field (e.g.
 *   "faults[0].abort.share"; an unknown key is named itself, "faults[0].dealy").
 * @example
 * const faults = new FaultInjector({ rules: [{ match: { service: 'users' }, delay: { share: 0.1, ms: 2_000 } }] });
 * const users = new ServiceClient({ service: 'users', discovery, faults });
 */
export class FaultInjector implements Stage {
  readonly name = 'fault-injection';
  readonly role = 'fault-injection';
  readonly level = 'attempt';
  readonly #caller: string | undefined;
  #clock: Clock;
  #random: () => number;
  readonly #given: { readonly clock: boolean; readonly random: boolean };
  readonly #injected = new Emitter<FaultInjected>();
  #table: Table;

  /** Fires for every fault injected. */
  readonly onFaultInjected: Event<FaultInjected> = this.#injected.event;

  constructor(options: FaultInjectorOptions = {}) {
    this.#caller = options.caller;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#given = { clock: options.clock !== undefined, random: options.random !== undefined };
    this.#table = this.#compile(options.rules ?? []);
  }

  /** Takes the stack's clock and random source unless given its own, and reports to its telemetry. */
  make(env: StageEnv): Filter {
    if (!this.#given.clock) this.#clock = env.clock;
    if (!this.#given.random) this.#random = env.random;
    const subscription = this.onFaultInjected((e) => env.telemetry.emit(e));
    env.onClose(() => subscription.dispose());
    return this.filter;
  }

  /** The rules in force. */
  get rules(): readonly FaultRule[] {
    return this.#table.rules;
  }

  /**
   * Replaces every rule at once.
   * @throws ConfigError naming the first invalid field; the rules in force are then kept.
   */
  update(rules: readonly FaultRule[]): void {
    this.#table = this.#compile(rules);
  }

  /** The per-attempt filter that injects the faults, for a stack of your own. With no rules it only passes attempts on. */
  readonly filter: Filter = (call, context, next) => {
    const compiled = this.#table.compiled;
    const instance = context.instance;
    if (compiled.length === 0 || instance === undefined) return next(call, context);
    for (let i = 0; i < compiled.length; i++) {
      const rule = compiled[i] as CompiledRule;
      if (rule.matches(call)) return this.#inject(rule, call, instance, context, next);
    }
    return next(call, context);
  };

  /**
   * The name of the first rule matching `call` (or "faults[i]"), without drawing anything; for
   * a dry run's report.
   * @internal
   */
  matching(call: Call): string | undefined {
    const compiled = this.#table.compiled;
    for (let i = 0; i < compiled.length; i++) {
      const rule = compiled[i] as CompiledRule;
      if (rule.matches(call)) return rule.name;
    }
    return undefined;
  }

  /**
   * What these rules would do to `call`, drawn from `random` and never applied: the rule
   * matching it and whether it would delay and abort; undefined when no rule matches.
   * @internal
   */
  decide(call: Call, random: () => number): FaultDecision | undefined {
    const compiled = this.#table.compiled;
    for (let i = 0; i < compiled.length; i++) {
      const rule = compiled[i] as CompiledRule;
      if (!rule.matches(call)) continue;
      const delay = rule.delayShare > 0 && random() < rule.delayShare;
      const abort = rule.abortShare > 0 && random() < rule.abortShare;
      return { rule: rule.name, delay, abort };
    }
    return undefined;
  }

  async #inject(
    rule: CompiledRule,
    call: Call,
    instance: ServiceInstance,
    context: CallContext,
    next: Service,
  ): Promise<Reply> {
    if (rule.delayShare > 0 && this.#random() < rule.delayShare) {
      this.#emit('delay', rule, call, instance);
      await sleep(this.#clock, rule.delayMs, context.signal);
    }
    if (rule.abortShare > 0 && this.#random() < rule.abortShare) {
      this.#emit('abort', rule, call, instance);
      if (rule.abortStatus !== undefined) {
        return {
          status: rule.abortStatus,
          headers: { 'x-trellis-fault': 'abort' },
          body: { error: 'fault injected', status: rule.abortStatus },
          instance,
        };
      }
      const what = rule.abortSent ? 'connection reset' : 'connection refused';
      throw new ConnectionError(call.service, instance.id, rule.abortSent, new Error(`fault injected: ${what}`));
    }
    return next(call, context);
  }

  #emit(kind: FaultInjected['kind'], rule: CompiledRule, call: Call, instance: ServiceInstance): void {
    if (this.#injected.hasListeners) {
      this.#injected.emit({
        type: 'fault-injected',
        kind,
        rule: rule.name,
        service: call.service,
        instance: instance.id,
      });
    }
  }

  #compile(rules: readonly FaultRule[]): Table {
    const valid = checkRules(rules);
    const options = this.#caller === undefined ? {} : { caller: this.#caller };
    const compiled = valid.map((rule, i) => compileRule(rule, `faults[${i}]`, options));
    // Kept as given, but copied, so a later change to the caller's array changes nothing here.
    return { rules: structuredClone(rules), compiled };
  }
}

const share = z
  .number({ error: 'must be a number from 0 to 1' })
  .min(0, 'must be between 0 and 1')
  .max(1, 'must be between 0 and 1');

const delaySchema = z.strictObject({
  share,
  ms: z
    .number({ error: `must be a number of ms from 0 to ${maxDelayMs}` })
    .min(0, `must be a number of ms from 0 to ${maxDelayMs}`)
    .max(maxDelayMs, `must be a number of ms from 0 to ${maxDelayMs}`),
});

const abortSchema = z
  .strictObject({
    share,
    status: z
      .int({ error: 'must be an HTTP error status from 400 to 599' })
      .min(400, 'must be an HTTP error status from 400 to 599')
      .max(599, 'must be an HTTP error status from 400 to 599')
      .optional(),
    connection: z.enum(['refused', 'reset'], { error: 'must be "refused" or "reset"' }).optional(),
  })
  .refine((abort) => (abort.status === undefined) !== (abort.connection === undefined), {
    message: 'give exactly one of "status" or "connection"',
  });

// The match is checked by compileCallMatch, with the routing rules' own schema and messages.
const ruleSchema = z
  .strictObject(
    {
      name: z.string({ error: 'must be a non-empty string' }).min(1, 'must be a non-empty string').optional(),
      match: z.unknown().optional(),
      delay: delaySchema.optional(),
      abort: abortSchema.optional(),
    },
    { error: 'must be an object with "match", "delay" and/or "abort"' },
  )
  .refine((rule) => rule.delay !== undefined || rule.abort !== undefined, {
    message: 'give "delay", "abort" or both',
  });

const rulesSchema = z
  .array(ruleSchema, { error: 'must be a list of fault rules' })
  .max(maxRules, `at most ${maxRules} rules`);

/**
 * The zod schema of a list of {@link FaultRule}s, matches included (with the routing rules'
 * call-match schema), for rules arriving as data inside a larger document.
 */
export const faultRulesSchema = z
  .array(ruleSchema.and(z.object({ match: callMatchSchema.optional() })), {
    error: 'must be a list of fault rules',
  })
  .max(maxRules, `at most ${maxRules} rules`);

/**
 * Validates fault rules, given as a list or as JSON text (from KV, a file), matches included.
 * @throws ConfigError whose `field` is the path of the first problem, e.g.
 *   "faults[0].abort.share"; "faults" for JSON that does not parse.
 * @example
 * const rules = parseFaultRules('[{ "match": { "service": "mail" }, "abort": { "share": 0.05, "status": 503 } }]');
 */
export function parseFaultRules(input: unknown): FaultRule[] {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input) as unknown;
    } catch (error) {
      throw new ConfigError('faults', `not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const rules = checkRules(value);
  rules.forEach((rule, i) => compileCallMatch(rule.match ?? {}, {}, `faults[${i}].match`));
  return rules;
}

/** The rules checked against the schema, their matches not yet. */
function checkRules(value: unknown): FaultRule[] {
  const result = rulesSchema.safeParse(value);
  if (!result.success) throw ConfigError.fromIssues(result.error.issues, 'faults');
  return result.data as FaultRule[];
}

function compileRule(rule: FaultRule, field: string, options: { readonly caller?: string }): CompiledRule {
  const matches = compileCallMatch(rule.match ?? {}, options, `${field}.match`);
  const abort = rule.abort;
  return {
    name: rule.name ?? field,
    matches,
    delayShare: rule.delay?.share ?? 0,
    delayMs: rule.delay?.ms ?? 0,
    abortShare: abort?.share ?? 0,
    abortStatus: abort?.status,
    abortSent: abort?.connection === 'reset',
  };
}
