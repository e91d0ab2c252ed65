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
import { compileCallMatch, type CallMatch, type CallMatcher } from '@trellis/loadbalancer';

/** Delay a share of the matched calls. */
export interface DelayFault {
  /** Share of matched calls delayed, from 0 to 100 (decimals allowed, e.g. 0.5). */
  readonly percent: number;
  /** How long, in ms. */
  readonly ms: number;
}

/**
 * Fail a share of the matched calls without sending them: with an HTTP `status` (the reply an
 * instance would give), or with a `connection` error ("refused": the call certainly never
 * arrived; "reset": it may have). Give exactly one of the two.
 */
export interface AbortFault {
  /** Share of matched calls aborted, from 0 to 100. */
  readonly percent: number;
  readonly status?: number;
  readonly connection?: 'refused' | 'reset';
}

/**
 * One fault: calls that `match` (the same match as routing rules: service, caller, method,
 * path, headers) are delayed and/or aborted in the given shares. Delay comes first, as in
 * Envoy, so a call may be delayed and then aborted.
 *
 * @example
 * const rule: FaultRule = { match: { service: 'users', path: { prefix: '/users' } }, abort: { percent: 5, status: 503 } };
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

interface CompiledRule {
  readonly name: string;
  readonly matches: CallMatcher;
  readonly delayPercent: number;
  readonly delayMs: number;
  readonly abortPercent: number;
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
 *   "faults[0].abort.percent").
 * @example
 * const faults = new FaultInjector({ rules: [{ match: { service: 'users' }, delay: { percent: 10, ms: 2_000 } }] });
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

  /** The per-attempt filter that injects the faults, for a stack of your own. */
  readonly filter: Filter = async (call, context, next) => {
    const compiled = this.#table.compiled;
    const instance = context.instance;
    if (compiled.length === 0 || instance === undefined) return next(call, context);
    for (let i = 0; i < compiled.length; i++) {
      const rule = compiled[i] as CompiledRule;
      if (rule.matches(call)) return this.#inject(rule, call, instance, context, next);
    }
    return next(call, context);
  };

  async #inject(
    rule: CompiledRule,
    call: Call,
    instance: ServiceInstance,
    context: CallContext,
    next: Service,
  ): Promise<Reply> {
    if (rule.delayPercent > 0 && this.#random() * 100 < rule.delayPercent) {
      this.#emit('delay', rule, call, instance);
      await sleep(this.#clock, rule.delayMs, context.signal);
    }
    if (rule.abortPercent > 0 && this.#random() * 100 < rule.abortPercent) {
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
    const given: unknown = rules;
    if (!Array.isArray(given)) throw new ConfigError('faults', 'must be a list of fault rules');
    if (rules.length > maxRules) throw new ConfigError('faults', `at most ${maxRules} rules`);
    const options = this.#caller === undefined ? {} : { caller: this.#caller };
    const compiled = rules.map((rule, i) => compileRule(rule, `faults[${i}]`, options));
    // Kept as given, but copied, so a later change to the caller's array changes nothing here.
    return { rules: structuredClone(rules), compiled };
  }
}

function compileRule(rule: FaultRule, field: string, options: { readonly caller?: string }): CompiledRule {
  if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) {
    throw new ConfigError(field, 'must be an object with "match", "delay" and/or "abort"');
  }
  onlyKeys(rule, ['name', 'match', 'delay', 'abort'], field);
  if (rule.name !== undefined && (typeof rule.name !== 'string' || rule.name === '')) {
    throw new ConfigError(`${field}.name`, 'must be a non-empty string');
  }
  if (rule.delay === undefined && rule.abort === undefined) {
    throw new ConfigError(field, 'give "delay", "abort" or both');
  }
  const matches = compileCallMatch(rule.match ?? {}, options, `${field}.match`);
  let delayPercent = 0;
  let delayMs = 0;
  if (rule.delay !== undefined) {
    objectAt(rule.delay, `${field}.delay`);
    onlyKeys(rule.delay, ['percent', 'ms'], `${field}.delay`);
    delayPercent = percentAt(rule.delay.percent, `${field}.delay.percent`);
    delayMs = rule.delay.ms;
    if (typeof delayMs !== 'number' || !(delayMs >= 0 && delayMs <= maxDelayMs)) {
      throw new ConfigError(`${field}.delay.ms`, `must be a number of ms from 0 to ${maxDelayMs}`);
    }
  }
  let abortPercent = 0;
  let abortStatus: number | undefined;
  let abortSent = false;
  if (rule.abort !== undefined) {
    const abort = rule.abort;
    objectAt(abort, `${field}.abort`);
    onlyKeys(abort, ['percent', 'status', 'connection'], `${field}.abort`);
    abortPercent = percentAt(abort.percent, `${field}.abort.percent`);
    if ((abort.status === undefined) === (abort.connection === undefined)) {
      throw new ConfigError(`${field}.abort`, 'give exactly one of "status" or "connection"');
    }
    if (abort.status !== undefined) {
      if (!Number.isInteger(abort.status) || abort.status < 400 || abort.status > 599) {
        throw new ConfigError(`${field}.abort.status`, `must be an HTTP error status from 400 to 599`);
      }
      abortStatus = abort.status;
    } else if (abort.connection === 'refused' || abort.connection === 'reset') {
      abortSent = abort.connection === 'reset';
    } else {
      throw new ConfigError(`${field}.abort.connection`, 'must be "refused" or "reset"');
    }
  }
  return { name: rule.name ?? field, matches, delayPercent, delayMs, abortPercent, abortStatus, abortSent };
}

function objectAt(value: unknown, field: string): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ConfigError(field, 'must be an object');
}

function onlyKeys(value: object, allowed: readonly string[], field: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new ConfigError(`${field}.${key}`, `unknown key; known: ${allowed.join(', ')}`);
  }
}

function percentAt(value: unknown, field: string): number {
  if (typeof value !== 'number' || !(value >= 0 && value <= 100)) {
    throw new ConfigError(field, 'must be a number from 0 to 100');
  }
  return value;
}
