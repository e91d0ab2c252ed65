import { ConfigError, systemClock, type Clock, type Timer } from '@trellis/core';
import type { ConsulKv } from './consul-kv.js';
import type { ConfigLogger } from './rules-watch.js';

/** The prefix of the instances' reports: `trellis/running/<instance-id>`. */
export const runningPrefix = 'trellis/running/';

/** A refusal as an instance reports it. */
export interface RunningRefusal {
  readonly version?: number;
  readonly field: string;
  readonly problem: string;
}

/** What an instance reports for one rules target (a service whose rules it follows). */
export interface RunningTargetState {
  /** The live version it applied. */
  readonly version?: number;
  /** The dry-run version it evaluates. */
  readonly dryRun?: number;
  /** The last version it refused, if the refusal still stands. */
  readonly refused?: RunningRefusal;
}

/** One instance's report, as {@link RunningReport.list} reads it. */
export interface RunningState {
  readonly service: string;
  readonly instance: string;
  /** When it was last written, ISO 8601. */
  readonly time: string;
  readonly rules: Readonly<Record<string, { readonly version?: number; readonly dryRun?: number }>>;
  readonly refused: Readonly<Record<string, RunningRefusal>>;
}

/** Options of {@link RunningReport}. */
export interface RunningReportOptions {
  readonly kv: ConsulKv;
  readonly service: string;
  /** The instance id; the key is `trellis/running/<instance>`. */
  readonly instance: string;
  /** TTL of the report's session (10 s to 24 h, Consul's bounds); renewed every half of it. Default 15 s. */
  readonly ttlMs?: number;
  /** Time a burst of {@link RunningReport.set} calls is gathered into one write; default 100 ms. */
  readonly debounceMs?: number;
  /** Drives the debounce and the renewals; default `systemClock`. */
  readonly clock?: Clock;
  /** Wall-clock time in epoch milliseconds, for the report's `time`; default `Date.now`. */
  readonly now?: () => number;
  /** Where a failing registry is logged (once per outage); default `console`. */
  readonly logger?: ConfigLogger;
}

// Targets one report holds at most: an instance follows its own rules and those of its callees.
const maxTargets = 256;
const maxProblemLength = 500;

/**
 * Writes what this instance runs to `trellis/running/<instance-id>`, under a Consul session
 * with Behavior `delete` and a TTL the report renews: the key disappears when the instance
 * dies (or loses the registry for two TTLs), with no one to clean up. {@link set} calls are
 * debounced, so a burst of changes is one write. "Who runs what" is then one recursive read:
 * {@link RunningReport.list}.
 *
 * @throws ConfigError from the constructor for a TTL outside 10 s to 24 h or an empty instance.
 * @example
 * const kv = new ConsulKv();
 * const report = new RunningReport({ kv, service: 'forum', instance: 'forum-1' });
 * report.set('users', { version: 7, dryRun: 8 });
 * report.set('forum', { version: 3 });
 * const running = await RunningReport.list(kv, { service: 'forum' }); // [{ instance: 'forum-1', rules: {...} }]
 * await report.close();
 */
export class RunningReport {
  readonly service: string;
  readonly instance: string;
  readonly key: string;
  readonly #kv: ConsulKv;
  readonly #ttlMs: number;
  readonly #debounceMs: number;
  readonly #clock: Clock;
  readonly #now: () => number;
  readonly #logger: ConfigLogger;
  readonly #targets = new Map<string, RunningTargetState>();
  #session: string | undefined;
  #dirty = true;
  #closed = false;
  #failing = false;
  #debounce: Timer | undefined;
  #renewal: Timer | undefined;
  // Writes and renewals run one at a time, in order.
  #chain: Promise<void> = Promise.resolve();

  constructor(options: RunningReportOptions) {
    const ttlMs = options.ttlMs ?? 15_000;
    if (!Number.isFinite(ttlMs) || ttlMs < 10_000 || ttlMs > 86_400_000) {
      throw new ConfigError('ttlMs', `must be from 10000 (10 s, Consul's least) to 86400000 (24 h), got ${ttlMs}`);
    }
    const debounceMs = options.debounceMs ?? 100;
    if (!Number.isFinite(debounceMs) || debounceMs < 0) {
      throw new ConfigError('debounceMs', `must be a number >= 0, got ${debounceMs}`);
    }
    if (typeof options.instance !== 'string' || options.instance === '' || options.instance.includes('/')) {
      throw new ConfigError(
        'instance',
        `must be a non-empty instance id without "/", got "${String(options.instance)}"`,
      );
    }
    this.service = options.service;
    this.instance = options.instance;
    this.key = `${runningPrefix}${options.instance}`;
    this.#kv = options.kv;
    this.#ttlMs = ttlMs;
    this.#debounceMs = debounceMs;
    this.#clock = options.clock ?? systemClock;
    this.#now = options.now ?? Date.now;
    this.#logger = options.logger ?? console;
    this.#schedule();
    this.#armRenewal();
  }

  /**
   * Records the state of one target and schedules a write (debounced).
   * @throws ConfigError past 256 targets.
   */
  set(target: string, state: RunningTargetState): void {
    if (this.#closed) return;
    if (!this.#targets.has(target) && this.#targets.size >= maxTargets) {
      throw new ConfigError('target', `a report holds at most ${maxTargets} targets`);
    }
    this.#targets.set(target, state);
    this.#dirty = true;
    this.#schedule();
  }

  /** What the report says now (written, or about to be). */
  state(): RunningState {
    const rules: Record<string, { version?: number; dryRun?: number }> = {};
    const refused: Record<string, RunningRefusal> = {};
    for (const [target, state] of [...this.#targets].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      rules[target] = {
        ...(state.version === undefined ? {} : { version: state.version }),
        ...(state.dryRun === undefined ? {} : { dryRun: state.dryRun }),
      };
      if (state.refused !== undefined) {
        refused[target] = { ...state.refused, problem: state.refused.problem.slice(0, maxProblemLength) };
      }
    }
    return {
      service: this.service,
      instance: this.instance,
      time: new Date(this.#now()).toISOString(),
      rules,
      refused,
    };
  }

  /**
   * Writes what is pending now, without waiting for the debounce, and waits for it.
   * A failed write stays pending (retried at the next renewal) and is logged, not thrown.
   */
  async flush(): Promise<void> {
    this.#debounce?.cancel();
    this.#debounce = undefined;
    await this.#enqueue(() => this.#write());
  }

  /** Stops renewing, deletes the key and destroys the session. A registry that is down is not an error: the TTL ends the session. */
  async close(): Promise<void> {
    if (this.#closed) return this.#chain;
    this.#closed = true;
    this.#debounce?.cancel();
    this.#renewal?.cancel();
    await this.#enqueue(async () => {
      const session = this.#session;
      if (session === undefined) return;
      this.#session = undefined;
      try {
        // Only this session's key: a new process of the same instance id may hold it already.
        await this.#kv
          .txn([
            { verb: 'check-session', key: this.key, session },
            { verb: 'delete', key: this.key },
          ])
          .catch(() => undefined);
        await this.#kv.destroySession(session);
      } catch (error) {
        this.#failed(error);
      }
    });
  }

  /**
   * The reports of every instance (of `service`, if given), in instance order, read with one
   * recursive GET of `trellis/running/`. Reports that are not valid JSON are left out.
   */
  static async list(kv: ConsulKv, options: { readonly service?: string } = {}): Promise<RunningState[]> {
    const states: RunningState[] = [];
    for (const entry of await kv.list(runningPrefix)) {
      const state = parseState(entry.value);
      if (state !== undefined && (options.service === undefined || state.service === options.service)) {
        states.push(state);
      }
    }
    return states.sort((a, b) => (a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : 0));
  }

  #schedule(): void {
    if (this.#debounce !== undefined || this.#closed) return;
    this.#debounce = this.#clock.setTimer(this.#debounceMs, () => {
      this.#debounce = undefined;
      void this.#enqueue(() => this.#write());
    });
  }

  #armRenewal(): void {
    this.#renewal = this.#clock.setTimer(this.#ttlMs / 2, () => {
      void this.#enqueue(async () => {
        const session = this.#session;
        if (session !== undefined && !(await this.#kv.renewSession(session))) {
          // It expired (a long outage, or a registry that lost its state): start again.
          this.#session = undefined;
          this.#dirty = true;
        }
        await this.#write();
      });
      if (!this.#closed) this.#armRenewal();
    });
  }

  #enqueue(task: () => Promise<void>): Promise<void> {
    this.#chain = this.#chain.then(task).catch((error: unknown) => this.#failed(error));
    return this.#chain;
  }

  async #write(): Promise<void> {
    if (!this.#dirty || this.#closed) return;
    this.#session ??= await this.#kv.createSession({
      name: `trellis running report of ${this.instance}`,
      ttlMs: this.#ttlMs,
      behavior: 'delete',
    });
    // The flag goes down first: a set() while the write is on its way makes another.
    this.#dirty = false;
    const written = await this.#kv.put(this.key, JSON.stringify(this.state()), { session: this.#session });
    if (!written) {
      // Another session holds the key (this instance id's previous process, until its TTL ends).
      this.#dirty = true;
      return;
    }
    if (this.#failing) {
      this.#failing = false;
      this.#logger.warn(`@trellis/config: the running report of ${this.instance} is written again`);
    }
  }

  #failed(error: unknown): void {
    this.#dirty = true;
    if (this.#failing) return;
    this.#failing = true;
    const reason = error instanceof Error ? error.message : String(error);
    this.#logger.warn(
      `@trellis/config: the running report of ${this.instance} could not be written (${reason}); retrying`,
    );
  }
}

function parseState(text: string): RunningState | undefined {
  try {
    const value = JSON.parse(text) as Partial<RunningState> | null;
    if (typeof value?.service !== 'string' || typeof value.instance !== 'string') return undefined;
    return {
      service: value.service,
      instance: value.instance,
      time: typeof value.time === 'string' ? value.time : '',
      rules: typeof value.rules === 'object' && value.rules !== null ? value.rules : {},
      refused: typeof value.refused === 'object' && value.refused !== null ? value.refused : {},
    };
  } catch {
    return undefined;
  }
}
