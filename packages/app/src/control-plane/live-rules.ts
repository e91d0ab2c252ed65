import type { FastifyBaseLogger } from 'fastify';
import { ConfigError, isServiceName, type Telemetry } from '@trellis/core';
import type { ServiceClient } from '@trellis/client';
import {
  parseRules,
  RulesWatch,
  RunningReport,
  type ConsulKv,
  type Rules,
  type RulesEnvelope,
  type RulesRefusal,
} from '@trellis/config';
import type { RuleLimits } from './rule-limits.js';

/** What an instance runs of one service's rules, for the status page and `trellis instances`. */
export interface RulesState {
  /** The service the rules are about (a service this app calls, or its own). */
  readonly service: string;
  /** The version in force; undefined while the registry holds none (the code's options apply). */
  readonly version: number | undefined;
  readonly author: string | undefined;
  readonly reason: string | undefined;
  /** The version evaluated in a dry run beside it, if any. */
  readonly dryRun: number | undefined;
  /** The last version refused here, and why; the one before stays in force. */
  readonly refused: RulesRefusal | undefined;
}

export interface LiveRulesOptions {
  readonly kv: ConsulKv;
  /** This app's service. */
  readonly service: string;
  readonly log: FastifyBaseLogger;
  readonly telemetry: Telemetry;
  /** The app's rule-driven inbound limits, which its own rules' `limits` drive. */
  readonly limits: RuleLimits;
}

const quiet = { warn: (): void => undefined };

interface Followed {
  readonly watch: RulesWatch<Rules>;
  readonly clients: ServiceClient[];
  applied: RulesEnvelope<Rules> | undefined;
  dryRun: RulesEnvelope<Rules> | undefined;
  refused: RulesRefusal | undefined;
}

/**
 * Follows the governance rules in the registry's KV for an app: for each service it calls,
 * `trellis/rules/<service>`'s `client` section goes to each of its clients (`applyRules`), and
 * a dry run beside it (`dryRun`); its own rules' `limits` go to its inbound limits, and the whole
 * document to those of {@link useOwnRules} (a gateway takes its routes there). A document refused (by the
 * schema, or by a client that cannot apply a field) leaves the last good one in force, is
 * logged once per version and reported. What each instance runs is written to
 * `trellis/running/<instance-id>` once the instance is known.
 */
export class LiveRules {
  readonly #options: LiveRulesOptions;
  readonly #followed = new Map<string, Followed>();
  readonly #ownRulesUsers: Array<(rules: Rules | undefined) => void> = [];
  #report: RunningReport | undefined;
  #closed = false;

  constructor(options: LiveRulesOptions) {
    this.#options = options;
    this.#follow(options.service);
  }

  /** Applies the rules of `client.service` to `client`, now and at each change. */
  add(client: ServiceClient): void {
    // A name that cannot be a KV key segment has no rules (the registry would not list it either).
    if (!isServiceName(client.service)) return;
    const followed = this.#follow(client.service);
    followed.clients.push(client);
    if (followed.applied !== undefined) {
      try {
        this.#applyClient(client, followed.applied);
      } catch (error) {
        this.#refuse(client.service, followed.applied.version, error);
      }
    }
    if (followed.dryRun !== undefined) this.#dryRunClient(client, followed.dryRun);
  }

  /** Stops applying rules to `client` (closed, or replaced). */
  remove(client: ServiceClient): void {
    const clients = this.#followed.get(client.service)?.clients;
    const at = clients?.indexOf(client) ?? -1;
    if (at >= 0) clients?.splice(at, 1);
  }

  /**
   * Hands the app's own rules to `use` now and at each change (undefined: none); a gateway takes
   * its routes this way. When `use` throws (a ConfigError naming the field), the version is
   * refused here as a whole, and what took it before is given the last good rules again.
   */
  useOwnRules(use: (rules: Rules | undefined) => void): void {
    this.#ownRulesUsers.push(use);
    const own = this.#followed.get(this.#options.service)?.applied;
    if (own !== undefined) use(own.rules);
  }

  /** Starts reporting what this instance runs, under `trellis/running/<instance>`. */
  report(instance: string): void {
    if (this.#closed || this.#report !== undefined) return;
    this.#report = new RunningReport({ kv: this.#options.kv, service: this.#options.service, instance });
    for (const service of this.#followed.keys()) this.#reportState(service);
  }

  /** Waits (at most `timeoutMs`) for the first answer of every watch, so that a starting app applies the rules before it serves. */
  async ready(timeoutMs: number): Promise<void> {
    await Promise.all([...this.#followed.values()].map((f) => f.watch.ready(timeoutMs).catch(() => undefined)));
  }

  /** The version of `service`'s rules in a dry run here, if any. */
  dryRunVersion(service: string): number | undefined {
    return this.#followed.get(service)?.dryRun?.version;
  }

  describe(): RulesState[] {
    return [...this.#followed.keys()].map((service) => this.#state(service));
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const followed of this.#followed.values()) followed.watch.close();
    await this.#report?.close().catch((error: unknown) => {
      this.#options.log.debug({ err: error }, 'could not remove the running report; its session will expire');
    });
  }

  #follow(service: string): Followed {
    let followed = this.#followed.get(service);
    if (followed !== undefined) return followed;
    // Refusals are logged here, with the service and field as fields: not by the watch as well.
    const watch = new RulesWatch<Rules>({ kv: this.#options.kv, service, validate: parseRules, logger: quiet });
    const entry: Followed = { watch, clients: [], applied: undefined, dryRun: undefined, refused: undefined };
    followed = entry;
    this.#followed.set(service, entry);
    watch.onApplied((envelope) => this.#applied(service, entry, envelope));
    watch.onDryRun((envelope) => this.#dryRunChanged(service, entry, envelope));
    watch.onRefused(({ dryRun, ...refusal }) => {
      if (dryRun) {
        this.#options.log.warn(
          { service, version: refusal.version, field: refusal.field },
          `dry run of "${service}" rules version ${refusal.version ?? '?'} refused: ${refusal.field}: ${refusal.problem}`,
        );
      } else this.#refused(service, entry, refusal);
    });
    return entry;
  }

  #applied(service: string, followed: Followed, envelope: RulesEnvelope<Rules> | undefined): void {
    // All or nothing across the clients: the first that refuses restores those before it.
    const applied: ServiceClient[] = [];
    const own = service === this.#options.service;
    const users: Array<(rules: Rules | undefined) => void> = [];
    try {
      for (const client of followed.clients) {
        this.#applyClient(client, envelope);
        applied.push(client);
      }
      if (own) {
        for (const use of this.#ownRulesUsers) {
          use(envelope?.rules);
          users.push(use);
        }
        this.#options.limits.apply(envelope?.rules.limits);
      }
    } catch (error) {
      for (const client of applied) this.#applyClient(client, followed.applied);
      for (const use of users) use(followed.applied?.rules);
      this.#refuse(service, envelope?.version, error);
      return;
    }
    followed.applied = envelope;
    followed.refused = undefined;
    this.#options.log.info(
      { service, version: envelope?.version },
      envelope === undefined
        ? `rules of "${service}" removed: the code's options apply`
        : `rules of "${service}" version ${envelope.version} applied (${envelope.author}: ${envelope.reason})`,
    );
    this.#reportState(service);
  }

  #dryRunChanged(service: string, followed: Followed, envelope: RulesEnvelope<Rules> | undefined): void {
    followed.dryRun = envelope;
    for (const client of followed.clients) this.#dryRunClient(client, envelope);
    if (service === this.#options.service) this.#options.limits.dryRun(envelope?.rules.limits);
    this.#options.log.info(
      { service, version: envelope?.version },
      envelope === undefined
        ? `dry run of "${service}" rules ended`
        : `dry run of "${service}" rules version ${envelope.version} (${envelope.author}: ${envelope.reason})`,
    );
    this.#reportState(service);
  }

  // A client names the field within its section; the report names it within the document.
  #applyClient(client: ServiceClient, applied: RulesEnvelope<Rules> | undefined): void {
    try {
      client.applyRules(applied?.rules.client ?? {}, applied?.version);
    } catch (error) {
      throw error instanceof ConfigError ? new ConfigError(`client.${error.field}`, error.problem) : error;
    }
  }

  // A candidate a client cannot evaluate runs on the others; the live rules are not touched.
  #dryRunClient(client: ServiceClient, envelope: RulesEnvelope<Rules> | undefined): void {
    try {
      client.dryRun(envelope?.rules.client, envelope?.version);
    } catch (error) {
      this.#options.log.warn(
        { service: client.service, version: envelope?.version, err: error },
        `dry run of "${client.service}" rules version ${envelope?.version ?? '?'} cannot run here: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }

  #refuse(service: string, version: number | undefined, error: unknown): void {
    const refusal: RulesRefusal =
      error instanceof ConfigError
        ? { version, field: error.field, problem: error.problem }
        : { version, field: 'rules', problem: error instanceof Error ? error.message : String(error) };
    this.#refused(service, this.#follow(service), refusal);
  }

  // Logged once per version and field: the same document written again is not news.
  #refused(service: string, followed: Followed, refusal: RulesRefusal): void {
    const version = refusal.version;
    const before = followed.refused;
    followed.refused = refusal;
    if (before === undefined || before.version !== version || before.field !== refusal.field) {
      this.#options.log.warn(
        { service, version, field: refusal.field },
        `rules of "${service}" version ${version ?? '?'} refused: ${refusal.field}: ${refusal.problem}; the last good rules stay`,
      );
      this.#emitRefused(service, refusal);
    }
    this.#reportState(service);
  }

  #emitRefused(service: string, refusal: RulesRefusal): void {
    const telemetry = this.#options.telemetry;
    if (telemetry.enabled) telemetry.emit({ type: 'rules-refused', service, ...refusal });
  }

  #state(service: string): RulesState {
    const followed = this.#followed.get(service);
    return {
      service,
      version: followed?.applied?.version,
      author: followed?.applied?.author,
      reason: followed?.applied?.reason,
      dryRun: followed?.dryRun?.version,
      refused: followed?.refused,
    };
  }

  #reportState(service: string): void {
    const state = this.#state(service);
    this.#report?.set(service, {
      ...(state.version === undefined ? {} : { version: state.version }),
      ...(state.dryRun === undefined ? {} : { dryRun: state.dryRun }),
      ...(state.refused === undefined
        ? {}
        : {
            refused: {
              field: state.refused.field,
              problem: state.refused.problem,
              ...(state.refused.version === undefined ? {} : { version: state.refused.version }),
            },
          }),
    });
  }
}
