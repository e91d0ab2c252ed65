import type { Clock } from './clock.js';
import { compose, type Filter, type Service } from './call.js';
import { ConfigError } from './errors.js';
import type { Telemetry } from './telemetry.js';

/** What the stack's builder hands every stage as it makes its filter. */
export interface StageEnv {
  /** The service the calls go to. */
  readonly service: string;
  /** This stage's name in the stack. */
  readonly stage: string;
  readonly clock: Clock;
  /** Uniform in [0, 1): jitter, weighted splits, fault shares. */
  readonly random: () => number;
  /** The one sink every stage reports its decisions to. */
  readonly telemetry: Telemetry;
  /** Runs `undo` when the stack is closed (a subscription to drop, a timer to stop). */
  onClose(undo: () => void): void;
}

/**
 * Which part of a governed call a stage plays. A stack holds at most one stage of each of
 * `deadline`, `retry`, `hedging`, `select`, `breaker`, `timeout` and `transport`: a second one
 * stacked by hand would multiply attempts or double-count failures.
 */
export type StageRole =
  | 'deadline'
  | 'retry'
  | 'hedging'
  | 'select'
  | 'breaker'
  | 'timeout'
  | 'fault-injection'
  | 'transport'
  | 'service-breaker'
  | 'rate-limit'
  | 'bulkhead'
  | 'fallback';

const singleRoles: ReadonlySet<StageRole> = new Set([
  'deadline',
  'retry',
  'hedging',
  'select',
  'breaker',
  'timeout',
  'transport',
]);

/**
 * One named stage of a stack: it makes its filter once, when the stack is built, from what the
 * builder hands it. Policies of @trellis/resilience are stages; {@link filterStage} makes one
 * of a plain filter.
 */
export interface Stage {
  /** Its name in the stack, which edits refer to, e.g. "retry". */
  readonly name: string;
  /** What it does, for refusing a second retry, breaker or timeout. */
  readonly role?: StageRole | undefined;
  /**
   * `call`: it must run before an instance is chosen (it may make several attempts);
   * `attempt`: after, since it needs `context.instance`. Left out: anywhere.
   */
  readonly level?: 'call' | 'attempt' | undefined;
  /** Makes the filter; undefined leaves the stage out of the built chain (switched off). */
  make(env: StageEnv): Filter | undefined;
}

/**
 * A stage made of a plain filter.
 *
 * @example
 * const stamp = filterStage('stamp', (call, context, next) =>
 *   next({ ...call, headers: { ...call.headers, 'x-caller': 'forum' } }, context));
 * new ServiceClient({ service: 'users', discovery, stack: (s) => s.insertBefore('retry', stamp) });
 */
export function filterStage(name: string, filter: Filter, level?: 'call' | 'attempt'): Stage {
  return { name, level, make: () => filter };
}

/**
 * An ordered list of named stages, outermost first (Finagle's Stack of roles): insert before or
 * after a stage, replace one or remove one, then build the chain once.
 *
 * @throws ConfigError from every edit that names no stage of the stack, adds a name twice, or
 *   adds a second stage of a role there may be one of (naming the stage that has it).
 * @example
 * const stack = new Stack([new Retry(), filterStage('send', (c, ctx) => service(c, ctx))]);
 * stack.insertAfter('retry', filterStage('audit', audit)).remove('retry');
 * const governed = stack.build({ service: 'users', clock, random: Math.random, telemetry: new Telemetry() });
 */
export class Stack {
  #stages: Stage[];
  #built = false;
  readonly #undo: Array<() => void> = [];

  constructor(stages: readonly Stage[] = []) {
    this.#stages = [];
    for (const stage of stages) this.#insert(this.#stages.length, stage);
  }

  /** The names of the stages, outermost first. */
  get names(): readonly string[] {
    return this.#stages.map((s) => s.name);
  }

  /** True when a stage of that name is in the stack. */
  has(name: string): boolean {
    return this.#stages.some((s) => s.name === name);
  }

  /** The stage of that name, or undefined. */
  find(name: string): Stage | undefined {
    return this.#stages.find((s) => s.name === name);
  }

  /** Puts `stage` just outside (before) the stage named `name`. */
  insertBefore(name: string, stage: Stage): this {
    this.#insert(this.#indexOf(name), stage);
    return this;
  }

  /** Puts `stage` just inside (after) the stage named `name`. */
  insertAfter(name: string, stage: Stage): this {
    this.#insert(this.#indexOf(name) + 1, stage);
    return this;
  }

  /** Puts `stage` first: outermost. */
  prepend(stage: Stage): this {
    this.#insert(0, stage);
    return this;
  }

  /** Replaces the stage named `name` with `stage` (which may have another name). */
  replace(name: string, stage: Stage): this {
    const index = this.#indexOf(name);
    const [old] = this.#stages.splice(index, 1);
    try {
      this.#insert(index, stage);
    } catch (error) {
      this.#stages.splice(index, 0, old as Stage);
      throw error;
    }
    return this;
  }

  /** Takes the stage named `name` out. */
  remove(name: string): this {
    this.#stages.splice(this.#indexOf(name), 1);
    return this;
  }

  /**
   * Makes every stage's filter, once, and composes them around the innermost stage. The stack
   * takes no edits afterwards.
   * @throws ConfigError when a per-attempt stage sits before instance selection, or a per-call
   *   stage after it.
   */
  build(env: Omit<StageEnv, 'stage' | 'onClose'>): Service {
    this.#checkLevels();
    this.#built = true;
    const filters: Filter[] = [];
    const onClose = (undo: () => void): void => {
      this.#undo.push(undo);
    };
    for (const stage of this.#stages) {
      const filter = stage.make({ ...env, stage: stage.name, onClose });
      if (filter !== undefined) filters.push(filter);
    }
    return compose(filters, noTransport);
  }

  /** Runs what the stages asked to undo at close (in reverse order); safe to call twice. */
  close(): void {
    for (let undo = this.#undo.pop(); undo !== undefined; undo = this.#undo.pop()) undo();
  }

  #indexOf(name: string): number {
    const index = this.#stages.findIndex((s) => s.name === name);
    if (index < 0) {
      throw new ConfigError(`stack.${name}`, `no stage of that name; the stages are ${this.names.join(', ')}`);
    }
    return index;
  }

  #insert(index: number, stage: Stage): void {
    if (this.#built) throw new ConfigError('stack', 'the stack is built; it takes no more edits');
    if (typeof stage !== 'object' || stage === null || typeof stage.make !== 'function') {
      throw new ConfigError(
        'stack',
        'a stage is an object with a name and make(env); wrap a filter with filterStage()',
      );
    }
    const role = stage.role;
    if (role !== undefined && singleRoles.has(role)) {
      const holder = this.#stages.find((s) => s.role === role);
      if (holder !== undefined) {
        throw new ConfigError(
          `stack.${holder.name}`,
          `the stack has a ${role} stage already ("${holder.name}"), so "${stage.name}" would be a second one; ` +
            `replace it with stack.replace('${holder.name}', ...) or remove it first`,
        );
      }
    }
    if (this.has(stage.name))
      throw new ConfigError(`stack.${stage.name}`, 'the stack has a stage of that name already');
    this.#stages.splice(index, 0, stage);
  }

  #checkLevels(): void {
    const select = this.#stages.findIndex((s) => s.role === 'select');
    if (select < 0) return;
    this.#stages.forEach((stage, i) => {
      if (stage.level === 'attempt' && i < select) {
        throw new ConfigError(
          `stack.${stage.name}`,
          'runs per attempt and needs the chosen instance: put it after "select"',
        );
      }
      if (stage.level === 'call' && i > select) {
        throw new ConfigError(
          `stack.${stage.name}`,
          'runs per call (it may make several attempts): put it before "select"',
        );
      }
    });
  }
}

const noTransport: Service = () =>
  Promise.reject(new ConfigError('stack', 'no stage answered the call: the stack has no transport stage'));
