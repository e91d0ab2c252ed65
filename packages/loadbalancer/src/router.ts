import type { Call, ServiceInstance } from '@trellis/core';
import { buildMatcher, type CallMatcher } from './call-match.js';
import { parseRoutingRules, type Destination, type RoutingRules, type Subset } from './routing-rules.js';

export interface RouterOptions {
  /** The calling service's own name, for routes that match on `caller`. */
  readonly caller?: string;
  /** A number in [0, 1) for weighted splits; default `Math.random`. Tests pass a seeded one. */
  readonly random?: () => number;
}

/**
 * The instances of one subset, filtered once per instance list: discovery hands out one list
 * per refresh, so the filter runs once per refresh, not once per call.
 */
class SubsetFilter {
  readonly #test: ((instance: ServiceInstance) => boolean) | undefined;
  #lastIn: readonly ServiceInstance[] | undefined;
  #lastOut: readonly ServiceInstance[] = [];

  constructor(subset: Subset) {
    this.#test = subsetTest(subset);
  }

  apply(instances: readonly ServiceInstance[]): readonly ServiceInstance[] {
    if (this.#test === undefined) return instances;
    if (instances !== this.#lastIn) {
      this.#lastIn = instances;
      this.#lastOut = instances.filter(this.#test);
    }
    return this.#lastOut;
  }
}

function subsetTest(subset: Subset): ((instance: ServiceInstance) => boolean) | undefined {
  const { tags, version, zone } = subset;
  const labels = Object.entries(subset.labels ?? {});
  if ((tags === undefined || tags.length === 0) && version === undefined && zone === undefined && labels.length === 0) {
    return undefined;
  }
  return (instance) =>
    (version === undefined || instance.meta.version === version) &&
    (zone === undefined || instance.meta.zone === zone) &&
    (tags === undefined || tags.every((t) => instance.tags.includes(t))) &&
    labels.every(([k, v]) => instance.meta.labels[k] === v);
}

/** A destination ready to use: one subset, or cumulative weights over several. */
class CompiledDestination {
  readonly #subsets: readonly SubsetFilter[];
  readonly #weights: readonly number[];

  constructor(destination: Destination) {
    if (destination.split !== undefined) {
      this.#subsets = destination.split.map((s) => new SubsetFilter(s.subset));
      this.#weights = destination.split.map((s) => s.weight);
    } else {
      this.#subsets = [new SubsetFilter(destination.to ?? {})];
      this.#weights = [1];
    }
  }

  apply(instances: readonly ServiceInstance[], random: () => number): readonly ServiceInstance[] {
    const subsets = this.#subsets;
    if (subsets.length === 1) return (subsets[0] as SubsetFilter).apply(instances);
    // Weights of subsets with no instance go to the others, so a canary with its only
    // instance gone sends everything to the stable version instead of failing 10% of calls.
    let total = 0;
    for (let i = 0; i < subsets.length; i++) {
      if ((subsets[i] as SubsetFilter).apply(instances).length > 0) total += this.#weights[i] as number;
    }
    if (total === 0) return [];
    let r = random() * total;
    let last: readonly ServiceInstance[] = [];
    for (let i = 0; i < subsets.length; i++) {
      const members = (subsets[i] as SubsetFilter).apply(instances);
      const weight = this.#weights[i] as number;
      if (members.length === 0 || weight === 0) continue;
      last = members;
      if (r < weight) return members;
      r -= weight;
    }
    return last; // only reached through rounding at the very top of the range
  }
}

interface Table {
  readonly rules: RoutingRules;
  readonly matchers: readonly CallMatcher[];
  readonly destinations: readonly CompiledDestination[];
  readonly fallback: CompiledDestination | undefined;
  /** Each route's name, or its position "routes[i]", for telemetry. */
  readonly names: readonly string[];
}

/**
 * Applies {@link RoutingRules} to a call: which of the service's instances it may go to.
 * Rules can be replaced while calls run: {@link Router.update} validates and compiles the new
 * table first and swaps it in whole, or throws and keeps the old one; a call sees one table
 * or the other, never a mix.
 *
 * @throws ConfigError from the constructor for invalid rules, naming the field.
 * @example
 * const router = new Router({ routes: [{ match: { headers: { 'x-canary': 'always' } }, to: { version: 'v2' } }] });
 * const candidates = router.route(instances, call);
 */
export class Router {
  readonly #caller: string | undefined;
  readonly #random: () => number;
  #table: Table;

  constructor(rules: RoutingRules = {}, options: RouterOptions = {}) {
    this.#caller = options.caller;
    this.#random = options.random ?? Math.random;
    this.#table = this.#compile(rules);
  }

  /** The rules in force, as validated. */
  get rules(): RoutingRules {
    return this.#table.rules;
  }

  /**
   * Replaces the whole table.
   * @throws ConfigError naming the first invalid field (e.g. "routes[1].split[0].weight");
   *   the rules in force are then left unchanged.
   */
  update(rules: RoutingRules): void {
    this.#table = this.#compile(rules);
  }

  /**
   * The instances `call` may go to: those of the first matching route's destination, of the
   * default destination, or all of them. May be empty when the destination has no instance.
   */
  /**
   * The route the last call took: its name (or "routes[i]"), "default", or undefined when no
   * rule applied. Read it right after {@link route}, as the instance selection stage does.
   */
  lastRoute: string | undefined;

  route(instances: readonly ServiceInstance[], call: Call): readonly ServiceInstance[] {
    const table = this.#table;
    const matchers = table.matchers;
    for (let i = 0; i < matchers.length; i++) {
      if ((matchers[i] as CallMatcher)(call)) {
        this.lastRoute = table.names[i];
        return (table.destinations[i] as CompiledDestination).apply(instances, this.#random);
      }
    }
    if (table.fallback === undefined) {
      this.lastRoute = undefined;
      return instances;
    }
    this.lastRoute = 'default';
    return table.fallback.apply(instances, this.#random);
  }

  #compile(rules: RoutingRules): Table {
    const valid = parseRoutingRules(rules);
    const routes = valid.routes ?? [];
    const options = this.#caller === undefined ? {} : { caller: this.#caller };
    return {
      rules: valid,
      matchers: routes.map((route) => (route.match === undefined ? () => true : buildMatcher(route.match, options))),
      destinations: routes.map((route) => new CompiledDestination(route)),
      fallback: valid.default === undefined ? undefined : new CompiledDestination(valid.default),
      names: routes.map((route, i) => route.name ?? `routes[${i}]`),
    };
  }
}
