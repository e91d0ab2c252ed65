import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Clock } from '@trellis/core';
import type { ConcurrencyLimitRule, LimitRules, RateLimitRule } from '@trellis/config';
import { ConcurrencyLimit, TokenBucket } from '@trellis/resilience';
import { holdSlot, refusedByRate } from '../inbound-limit.js';

/** What a dry run of limits found: requests the candidate would have refused. */
export interface LimitDryRunCounts {
  /** Requests the candidate's rate would have answered 429. */
  readonly rate: number;
  /** Requests the candidate's concurrency limit would have answered 503 (no queue room). */
  readonly concurrency: number;
}

/** The limits in force from the rules and the dry run beside them, for the status page. */
export interface RuleLimitsStatus {
  readonly rate: RateLimitRule | undefined;
  readonly concurrency: ConcurrencyLimitRule | undefined;
  readonly dryRun: { readonly limits: LimitRules; readonly wouldRefuse: LimitDryRunCounts } | undefined;
}

export interface RuleLimitsOptions {
  readonly clock: Clock;
  /** Requests no limit applies to (health checks, the scrape, the status page). */
  readonly exempt: (request: FastifyRequest) => boolean;
  /** Told of each request a dry-run limit would have refused. */
  readonly onWouldRefuse?: (limit: 'rate' | 'concurrency', request: FastifyRequest) => void;
}

/**
 * The inbound limits of a service's rules (`limits`), applied on every request beside the
 * limits its code sets, and changed live: a new rate starts a new bucket (full), a new
 * concurrency limit takes the requests that arrive from then on, while those holding a slot of
 * the old one give it back there. A dry run counts what a candidate would refuse, refusing nothing.
 */
export class RuleLimits {
  readonly #clock: Clock;
  readonly #onWouldRefuse: RuleLimitsOptions['onWouldRefuse'];
  #rate: TokenBucket | undefined;
  #concurrency: ConcurrencyLimit | undefined;
  #dry: DryRun | undefined;

  constructor(http: FastifyInstance, options: RuleLimitsOptions) {
    this.#clock = options.clock;
    this.#onWouldRefuse = options.onWouldRefuse;
    const exempt = options.exempt;
    http.addHook('onRequest', async (request, reply) => {
      // One field read per request while the rules set no limit and no dry run runs.
      if (this.#rate === undefined && this.#concurrency === undefined && this.#dry === undefined) return undefined;
      if (exempt(request)) return undefined;
      if (this.#dry !== undefined) this.#dryRun(this.#dry, request, reply.raw);
      const rate = this.#rate;
      if (rate !== undefined && refusedByRate(rate, reply)) return reply;
      const concurrency = this.#concurrency;
      if (concurrency !== undefined && !(await holdSlot(concurrency, reply))) return reply;
      return undefined;
    });
  }

  /** Puts `limits` in force; undefined (or a section left out) removes the rules' limit. */
  apply(limits: LimitRules | undefined): void {
    this.#rate = sameRate(this.#rate, limits?.rate) ? this.#rate : this.#bucket(limits?.rate);
    const concurrency = limits?.concurrency;
    this.#concurrency = sameConcurrency(this.#concurrency, concurrency)
      ? this.#concurrency
      : concurrency === undefined
        ? undefined
        : new ConcurrencyLimit({ ...concurrency, name: 'inbound', clock: this.#clock });
  }

  /** Counts what `limits` would refuse beside the ones in force, refusing nothing; undefined stops. */
  dryRun(limits: LimitRules | undefined): void {
    this.#dry =
      limits === undefined || (limits.rate === undefined && limits.concurrency === undefined)
        ? undefined
        : { limits, rate: this.#bucket(limits.rate), inFlight: 0, wouldRefuse: { rate: 0, concurrency: 0 } };
  }

  describe(): RuleLimitsStatus {
    const dry = this.#dry;
    return {
      rate: this.#rate === undefined ? undefined : { ratePerSecond: this.#rate.ratePerSecond, burst: this.#rate.burst },
      concurrency:
        this.#concurrency === undefined
          ? undefined
          : {
              maxConcurrent: this.#concurrency.maxConcurrent,
              maxQueue: this.#concurrency.maxQueue,
              queueTimeoutMs: this.#concurrency.queueTimeoutMs,
            },
      dryRun: dry === undefined ? undefined : { limits: dry.limits, wouldRefuse: { ...dry.wouldRefuse } },
    };
  }

  #bucket(rule: RateLimitRule | undefined): TokenBucket | undefined {
    return rule === undefined ? undefined : new TokenBucket({ ...rule, clock: this.#clock });
  }

  #dryRun(dry: DryRun, request: FastifyRequest, response: NodeJS.EventEmitter): void {
    if (dry.rate !== undefined && !dry.rate.tryAcquire().granted) {
      dry.wouldRefuse.rate++;
      this.#onWouldRefuse?.('rate', request);
    }
    const limit = dry.limits.concurrency;
    if (limit === undefined) return;
    // Requests that arrived before the dry run began are not counted: the count warms up with them.
    if (dry.inFlight >= limit.maxConcurrent + (limit.maxQueue ?? 0)) {
      dry.wouldRefuse.concurrency++;
      this.#onWouldRefuse?.('concurrency', request);
    }
    dry.inFlight++;
    response.once('close', () => dry.inFlight--);
  }
}

interface DryRun {
  readonly limits: LimitRules;
  readonly rate: TokenBucket | undefined;
  inFlight: number;
  readonly wouldRefuse: { rate: number; concurrency: number };
}

// An unchanged rate keeps its bucket, so that rewriting the rules for another field does not refill it.
function sameRate(bucket: TokenBucket | undefined, rule: RateLimitRule | undefined): boolean {
  if (bucket === undefined || rule === undefined) return bucket === undefined && rule === undefined;
  return (
    bucket.ratePerSecond === rule.ratePerSecond && bucket.burst === (rule.burst ?? Math.max(1, rule.ratePerSecond))
  );
}

function sameConcurrency(limit: ConcurrencyLimit | undefined, rule: ConcurrencyLimitRule | undefined): boolean {
  if (limit === undefined || rule === undefined) return limit === undefined && rule === undefined;
  return (
    limit.maxConcurrent === rule.maxConcurrent &&
    limit.maxQueue === (rule.maxQueue ?? 0) &&
    limit.queueTimeoutMs === (rule.queueTimeoutMs ?? 1_000)
  );
}
