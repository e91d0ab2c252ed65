import { Emitter } from '@trellis/core';
import type { ConsulKv, KvEntry } from './consul-kv.js';
import type { KvWatch, KvWatchOptions } from './kv-watch.js';
import {
  decodeEnvelope,
  rulesDryRunKey,
  rulesKey,
  type RulesEnvelope,
  type RulesRefusal,
  type RulesValidator,
} from './rules-envelope.js';

/** Where `@trellis/config` logs what it refuses: `console`, or a pino/Fastify logger. */
export interface ConfigLogger {
  warn(message: string): void;
}

/** Options of {@link RulesWatch}. */
export interface RulesWatchOptions<T> {
  readonly kv: ConsulKv;
  readonly service: string;
  /** Checks a rules document, throwing a ConfigError that names the field (`parseRules`). */
  readonly validate: RulesValidator<T>;
  /** Where refusals are logged, once per version; default `console`. */
  readonly logger?: ConfigLogger;
  /** How the two KV watches query (backoff, floor, clock). */
  readonly watch?: Omit<KvWatchOptions, 'recurse'>;
}

/** What {@link RulesWatch.onRefused} reports: a refused document, and whether it was the dry run. */
export interface RulesRefused extends RulesRefusal {
  readonly dryRun: boolean;
}

/**
 * What an instance runs: follows the live rules of a service (`trellis/rules/<service>`) and its
 * dry-run candidate (`trellis/rules-dry-run/<service>`) with blocking queries, and validates
 * each version. A valid one is applied (`onApplied`); an invalid one (not JSON, a bad envelope,
 * rules failing the validator) is refused (`onRefused`, logged once per version) and the last
 * good one stays; a deleted key applies `undefined` (back to the defaults in code). While the
 * registry is down the last good rules stay.
 *
 * @example
 * const rules = new RulesWatch({ kv: new ConsulKv(), service: 'users', validate: (r) => r as object });
 * rules.onApplied((envelope) => console.log('now running version', envelope?.version));
 * rules.onRefused((r) => console.warn(`refused version ${r.version}: ${r.field} ${r.problem}`));
 * await rules.ready(5_000).catch(() => undefined); // the registry may be down: defaults until it answers
 */
export class RulesWatch<T> {
  readonly service: string;
  readonly #validate: RulesValidator<T>;
  readonly #logger: ConfigLogger;
  readonly #live: KvWatch;
  readonly #dry: KvWatch;
  readonly #applied = new Emitter<RulesEnvelope<T> | undefined>();
  readonly #refused = new Emitter<RulesRefused>();
  readonly #dryRuns = new Emitter<RulesEnvelope<T> | undefined>();
  #current: RulesEnvelope<T> | undefined;
  #dryRun: RulesEnvelope<T> | undefined;
  // The last refusal of each key, so that one bad version is reported once.
  readonly #lastRefusal = new Map<boolean, string>();

  /** A new version is applied; undefined: the key was deleted, back to the defaults in code. */
  readonly onApplied = this.#applied.event;
  /** A document was refused (the last good one stays); once per version and problem. */
  readonly onRefused = this.#refused.event;
  /** A dry-run candidate to evaluate beside the live rules; undefined: the dry run ended. */
  readonly onDryRun = this.#dryRuns.event;
  /** The registry stopped answering; the rules in force stay. */
  readonly onUnavailable: KvWatch['onUnavailable'];
  /** The registry answers again. */
  readonly onRecovered: KvWatch['onRecovered'];

  constructor(options: RulesWatchOptions<T>) {
    this.service = options.service;
    this.#validate = options.validate;
    this.#logger = options.logger ?? console;
    const watchOptions = options.watch ?? {};
    this.#live = options.kv.watch(rulesKey(options.service), watchOptions);
    this.#dry = options.kv.watch(rulesDryRunKey(options.service), watchOptions);
    this.#live.onChange((entries) => this.#changed(false, entries[0]));
    this.#dry.onChange((entries) => this.#changed(true, entries[0]));
    this.onUnavailable = this.#live.onUnavailable;
    this.onRecovered = this.#live.onRecovered;
  }

  /** The live rules in force: the last valid version read; undefined when none is set. */
  current(): RulesEnvelope<T> | undefined {
    return this.#current;
  }

  /** The dry-run candidate in force; undefined when there is none. */
  dryRun(): RulesEnvelope<T> | undefined {
    return this.#dryRun;
  }

  /**
   * Resolves once both keys were read once.
   * @throws (rejects with) RegistryUnavailableError when the registry is down, or a TIMEOUT
   *   TrellisError; the watch goes on trying, and applies the rules when the registry answers.
   */
  async ready(timeoutMs = 5_000): Promise<void> {
    await Promise.all([this.#live.ready(timeoutMs), this.#dry.ready(timeoutMs)]);
  }

  /** Stops following the keys. */
  close(): void {
    this.#live.close();
    this.#dry.close();
    this.#applied.clear();
    this.#refused.clear();
    this.#dryRuns.clear();
  }

  #changed(dryRun: boolean, entry: KvEntry | undefined): void {
    const emitter = dryRun ? this.#dryRuns : this.#applied;
    const before = dryRun ? this.#dryRun : this.#current;
    if (entry === undefined) {
      this.#lastRefusal.delete(dryRun);
      if (before === undefined) return;
      this.#set(dryRun, undefined);
      emitter.emit(undefined);
      return;
    }
    const decoded = decodeEnvelope(entry.key, entry.value, this.#validate);
    if ('envelope' in decoded) {
      this.#lastRefusal.delete(dryRun);
      this.#set(dryRun, decoded.envelope);
      emitter.emit(decoded.envelope);
      return;
    }
    const refusal = decoded.refusal;
    const signature = `${refusal.version}\n${refusal.field}\n${refusal.problem}`;
    if (this.#lastRefusal.get(dryRun) === signature) return;
    this.#lastRefusal.set(dryRun, signature);
    const kept = before === undefined ? 'none' : `version ${before.version}`;
    this.#logger.warn(
      `@trellis/config: refused ${dryRun ? 'the dry-run rules' : 'the rules'} of service "${this.service}"` +
        `${refusal.version === undefined ? '' : ` version ${refusal.version}`}: ${refusal.field}: ${refusal.problem}; keeping ${kept}`,
    );
    this.#refused.emit({ ...refusal, dryRun });
  }

  #set(dryRun: boolean, envelope: RulesEnvelope<T> | undefined): void {
    if (dryRun) this.#dryRun = envelope;
    else this.#current = envelope;
  }
}
