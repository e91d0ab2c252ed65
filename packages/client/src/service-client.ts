import {
  CallContext,
  ConfigError,
  filterStage,
  NoInstancesError,
  Stack,
  systemClock,
  Telemetry,
  UpstreamStatusError,
  type Call,
  type Clock,
  type Event,
  type Filter,
  type InstanceSource,
  type Reply,
  type Service,
  type ServiceInstance,
  type Stage,
  type StageEnv,
  type TelemetryEvent,
} from '@trellis/core';
import {
  checkRetryBudgetOptions,
  CircuitBreakerRegistry,
  Deadline,
  Hedging,
  instanceCircuitBreaker,
  Retry,
  RetryBudget,
  Timeout,
  type HedgingLimits,
  type HedgingOptions,
  type RetryLimits,
  type RetryOptions,
  type SavedCircuitState,
} from '@trellis/resilience';
import {
  createStrategy,
  LoadBalancer,
  Router,
  type InstanceLoad,
  type RoutingRules,
  type Strategy,
  type StrategyName,
} from '@trellis/loadbalancer';
import { parseClientRules, type ClientRules, type RetryBudgetRules } from './client-rules.js';
import { createTransport, type TransportName } from './create-transport.js';
import { DryRun, type DryRunStatus } from './dry-run.js';
import { failoverFilter } from './failover.js';
import { FaultInjector, type FaultRule } from './fault-injection.js';
import { inboundScope, timeoutHeader } from './inbound-scope.js';
import type { Transport } from './transport.js';
import type { InstanceChanges } from './undici-transport.js';

export interface ServiceClientOptions {
  /** The service to call, by the name it registers under. */
  readonly service: string;
  /**
   * Where instances are found: a registry's `Discovery`, or any {@link InstanceSource}. An undici
   * transport made by name also follows its `onChanged`, when it has one.
   */
  readonly discovery: InstanceSource;
  /** This process's own service name, which routing and fault rules may match on. */
  readonly caller?: string;
  /**
   * How an instance is chosen: a strategy object, or the name of one for the default
   * {@link LoadBalancer} (which also applies `rules` and skips instances whose breaker is open).
   * Default "p2c-peak-ewma".
   */
  readonly strategy?: Strategy | StrategyName;
  /** Routing rules of the default load balancer; default none. */
  readonly rules?: RoutingRules;
  /**
   * Per-instance circuit breakers (the "breaker" stage); an instance whose breaker opens is
   * ejected from load balancing until a probe succeeds. Share one registry among the clients of
   * a process. Default a registry of this client's own, with its defaults; `false` for none.
   */
  readonly breakers?: CircuitBreakerRegistry | false;
  /**
   * Retries of failed attempts on other instances, within a retry budget (the "retry" stage);
   * default {@link Retry}'s defaults. `false` keeps only failover: a refused connection, or an
   * idempotent call whose connection broke, goes to another instance at once.
   */
  readonly retry?: RetryOptions | false;
  /** Hedged requests (the "hedging" stage): a second attempt when the first is slow; default off. */
  readonly hedging?: HedgingOptions | false;
  /** Each attempt is abandoned (and its request cancelled) after this long; default 10 000 ms, `false` for none. */
  readonly attemptTimeoutMs?: number | false;
  /** The whole call, retries included, is abandoned after this long (the "deadline" stage); default none. */
  readonly deadlineMs?: number;
  /** Fault injection (the "fault-injection" stage): an injector, or its rules; default none. */
  readonly faults?: FaultInjector | readonly FaultRule[];
  /** Time for breakers, timeouts, retries and latency averages; default the system clock. */
  readonly clock?: Clock;
  /** Uniform in [0, 1): jitter, splits, fault shares; default Math.random. */
  readonly random?: () => number;
  /**
   * Uniform in [0, 1) for a dry run's own draws (the candidate's splits and fault shares), kept
   * apart from `random` so that a dry run changes no live pick or fault; default Math.random.
   */
  readonly dryRunRandom?: () => number;
  /**
   * How a call is sent: a transport, or the name of one to make ("undici": a keep-alive pool
   * per instance, several times faster); default a new `AxiosTransport`. One made by
   * name is closed with the client.
   */
  readonly transport?: Transport | TransportName;
  /** Where every stage reports its decisions; default a sink of this client's own ({@link ServiceClient.onEvent}). */
  readonly telemetry?: Telemetry;
  /**
   * Your own stages or filters around every call (fallback, rate limit, bulkhead, ...),
   * outermost first, before "deadline". A filter is named `filter-<i>`.
   */
  readonly filters?: ReadonlyArray<Stage | Filter>;
  /**
   * Edits of the stack before it is built: insert before or after a named stage, replace one,
   * remove one.
   * @example
   * const client = new ServiceClient({
   *   service: 'users', discovery,
   *   stack: (s) => s.insertAfter('breaker', filterStage('audit', audit, 'attempt')).remove('hedging'),
   * });
   */
  readonly stack?: (stack: Stack) => void;
}

/** What a caller may set for one call. */
export interface CallOptions {
  readonly headers?: Readonly<Record<string, string>>;
  /** Cancels the call. Inside a TrellisApp route, the inbound request's signal applies as well. */
  readonly signal?: AbortSignal;
  /** This call's deadline, from now, retries included; the earlier of it and the inbound request's applies. */
  readonly timeoutMs?: number;
  /** `false` makes exactly one attempt (no retry, no failover). */
  readonly retry?: false;
  /** Says whether this call may run twice (retried after it may have arrived, hedged), whatever its method. */
  readonly idempotent?: boolean;
  /**
   * The route template of the path, e.g. "/users/:id" for "/users/42": metrics label the call's
   * attempts with it (without one, with a fixed placeholder, never the path).
   */
  readonly template?: string;
}

/** One request, as the caller writes it. */
export interface ServiceRequest<B = unknown> extends CallOptions {
  /** Default "GET". */
  readonly method?: string;
  /** Path with its query string, e.g. "/users/1?fields=name". */
  readonly path: string;
  /** Sent as JSON when it is an object. */
  readonly body?: B;
}

/** Most instances {@link ServiceClient.describe} reports on; the rest are counted, not listed. */
export const maxDescribedInstances = 200;

/** What a client knows of one instance, from {@link ServiceClient.describe}. */
export interface ClientInstanceStatus {
  readonly id: string;
  /** Its breaker's state (`state`, `openRemainingMs`, the window's `calls` and `failures`); undefined while it has none (never called: closed). */
  readonly breaker: SavedCircuitState | undefined;
  /** What the strategy knows of its load (P2C's score and latency estimate, calls in flight); undefined when it keeps nothing. */
  readonly load: InstanceLoad | undefined;
}

/** The retry budget of a client's retry stage, from {@link ServiceClient.describe}. */
export interface RetryBudgetStatus {
  /** Retries the budget would allow now. */
  readonly balance: number;
  readonly retryShare: number;
  readonly minRetriesPerSecond: number;
  readonly ttlMs: number;
}

/**
 * How a client is governed right now, from {@link ServiceClient.describe}: plain, bounded data
 * (rules are capped by their validation, instances by {@link maxDescribedInstances}).
 */
export interface ClientStatus {
  /** The target service. */
  readonly service: string;
  /** The strategy's name, e.g. "p2c-peak-ewma". */
  readonly strategy: string;
  /** The stack's stage names, outermost first, as built. */
  readonly stages: readonly string[];
  /** The retry stage's budget; undefined without one (retry off, `budget: false`, or a retry stage of your own). */
  readonly retryBudget: RetryBudgetStatus | undefined;
  /** The load balancer's routing rules in force; undefined with a strategy object of your own. */
  readonly routingRules: RoutingRules | undefined;
  /** The route the last pick took ("default", a route's name), when rules applied. */
  readonly lastRoute: string | undefined;
  /** The fault-injection stage's rules in force; empty without any. */
  readonly faultRules: readonly FaultRule[];
  /** True while the load balancer's last pick had to use ejected instances (every breaker open). */
  readonly panic: boolean;
  /** The rules applied last ({@link ServiceClient.applyRules}), as validated; undefined while none were (the client's own options). */
  readonly rules: ClientRules | undefined;
  /** The version given with the rules applied last. */
  readonly rulesVersion: number | undefined;
  /** The version given with the dry run in progress ({@link ServiceClient.dryRun}). */
  readonly dryRunVersion: number | undefined;
  /** What the dry run in progress has counted; undefined without one. */
  readonly dryRun: DryRunStatus | undefined;
  /** The instances asked about, in their order, at most {@link maxDescribedInstances}. */
  readonly instances: readonly ClientInstanceStatus[];
  /** How many of the instances asked about were left out of `instances`. */
  readonly instancesLeftOut: number;
}

/** The names of a ServiceClient's stages, outermost first, before your edits. */
export const defaultStages = [
  'deadline',
  'retry',
  'hedging',
  'select',
  'breaker',
  'attempt-timeout',
  'fault-injection',
  'transport',
] as const;

/**
 * Calls one service by name, governed: each call goes through one stack of named stages,
 * outermost first: your filters, `deadline`, `retry` (within a budget), `hedging` (off by
 * default), `select` (discovery, routing rules, ejected instances skipped, then the strategy:
 * P2C over peak EWMA by default), `breaker` (per instance), `attempt-timeout` (10 s),
 * `fault-injection` (none by default) and `transport` (axios). The stack is built once, in the
 * constructor; edit it with the `stack` option. Every stage reports to one telemetry sink.
 * Governance rules change the running stages without a rebuild ({@link ServiceClient.applyRules}),
 * and a candidate can be tried beside them first ({@link ServiceClient.dryRun}).
 *
 * @throws ConfigError from the constructor for an unknown strategy name, invalid rules or
 *   policy options, or an edit of the stack that names no stage or adds a second retry,
 *   breaker or timeout; the field names what is wrong.
 * @example
 * const users = new ServiceClient({ service: 'users', discovery });
 * const user = await users.get<User>('/users/1');
 */
export class ServiceClient {
  readonly service: string;
  /** The strategy that picks instances (a {@link LoadBalancer} unless one was given). */
  readonly strategy: Strategy;
  /** The per-instance breakers, or undefined with `breakers: false`. */
  readonly breakers: CircuitBreakerRegistry | undefined;
  /** The sink every stage reports to. */
  readonly telemetry: Telemetry;
  /** Every decision of every call: instance picked, attempts, retries, hedges, timeouts, breaker changes, faults. */
  readonly onEvent: Event<TelemetryEvent>;
  /** The names of the stages, outermost first, as built. */
  readonly stages: readonly string[];
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #dryRunRandom: () => number;
  readonly #caller: string | undefined;
  readonly #transport: Transport;
  readonly #ownsTransport: boolean;
  readonly #ownsBreakers: boolean;
  readonly #stack: Stack;
  readonly #send: Service;
  readonly #source: InstanceSource;
  /** The stages rules can change: this client's own, still in the stack after its edits. */
  readonly #own: OwnStages;
  /** What the client was built with, which a field left out of the rules returns to. */
  readonly #base: BaseOptions;
  /** What the "select" stage reads per attempt beyond the strategy: the dry run, when one is set. */
  readonly #selection: Selection = { dry: undefined };
  #rules: ClientRules | undefined;
  #rulesVersion: number | undefined;
  #breakerRules = false;

  constructor(options: ServiceClientOptions) {
    const clock = options.clock ?? systemClock;
    const random = options.random ?? Math.random;
    if (typeof options.service !== 'string' || options.service === '') {
      throw new ConfigError('service', 'must be the name of the service to call');
    }
    this.service = options.service;
    this.#source = options.discovery;
    this.#clock = clock;
    this.#random = random;
    this.#dryRunRandom = options.dryRunRandom ?? Math.random;
    this.#caller = options.caller;
    this.telemetry = options.telemetry ?? new Telemetry();
    this.onEvent = this.telemetry.onEvent;
    this.#ownsBreakers = options.breakers === undefined;
    this.breakers =
      options.breakers === false ? undefined : (options.breakers ?? new CircuitBreakerRegistry({ clock }));
    const given = options.strategy;
    const balancer =
      given !== undefined && typeof given !== 'string'
        ? undefined
        : new LoadBalancer({
            clock,
            random,
            ...(given === undefined ? {} : { strategy: given }),
            ...(options.rules === undefined ? {} : { rules: options.rules }),
            ...(options.caller === undefined ? {} : { caller: options.caller }),
            ...(this.breakers === undefined ? {} : { health: this.breakers }),
          });
    this.strategy = balancer ?? (given as Strategy);
    this.#ownsTransport = options.transport === undefined || typeof options.transport === 'string';
    const changes = options.discovery as Partial<InstanceChanges>;
    this.#transport = createTransport(options.transport, {
      service: options.service,
      ...(typeof changes.onChanged === 'function' ? { changes: changes as InstanceChanges } : {}),
    });

    // Every stage rules may change is built, switched off where the options say so, so that a
    // rule can switch it on: an idle one costs a field read per call.
    const retry = new Retry({ clock, random, ...(options.retry === false ? {} : options.retry) });
    const retryStage = new RetrySwitch(retry, options.retry !== false);
    const hedgingOptions = options.hedging === undefined || options.hedging === false ? undefined : options.hedging;
    const hedging = new Hedging({ clock, ...hedgingOptions });
    if (hedgingOptions === undefined) hedging.update(false);
    const timeout = new Timeout({ timeoutMs: options.attemptTimeoutMs ?? 10_000, clock });
    const deadlineStage = new Deadline(options.deadlineMs === undefined ? {} : { timeoutMs: options.deadlineMs });
    const faults = options.faults;
    const injector =
      faults instanceof FaultInjector
        ? faults
        : new FaultInjector({
            rules: faults ?? [],
            ...(options.caller === undefined ? {} : { caller: options.caller }),
          });
    const breakerStage =
      this.breakers === undefined ? off('breaker', 'breaker', 'attempt') : instanceCircuitBreaker(this.breakers);
    const stack = new Stack([
      ...(options.filters ?? []).map((f, i) => (typeof f === 'function' ? filterStage(`filter-${i}`, f) : f)),
      deadlineStage,
      // Retry covers what failover does, within its budget; failover alone when retries are off.
      retryStage,
      hedging,
      selectStage(options.discovery, this.strategy, this.#selection),
      breakerStage,
      timeout,
      injector,
      transportStage(this.#transport),
    ]);
    options.stack?.(stack);
    // After the edits: what describe() reports and rules change is what runs.
    const kept = <T extends Stage>(stage: T): T | undefined => (stack.find(stage.name) === stage ? stage : undefined);
    this.#own = {
      balancer,
      retry: kept(retryStage),
      hedging: kept(hedging),
      timeout: kept(timeout),
      deadline: kept(deadlineStage),
      faults: kept(injector),
      breaker: this.breakers !== undefined && kept(breakerStage) !== undefined,
      otherRetry: (() => {
        const found = stack.find('retry');
        return found instanceof Retry ? found : undefined;
      })(),
    };
    this.#base = {
      strategy: balancer?.strategy,
      routing: balancer?.rules ?? {},
      retryOn: options.retry !== false,
      retry: options.retry === false || options.retry === undefined ? {} : limitsOf(options.retry),
      retryBudget: retry.budget,
      attemptTimeoutMs: timeout.timeoutMs,
      deadlineMs: deadlineStage.timeoutMs,
      hedging: hedgingOptions === undefined ? false : hedgingLimitsOf(hedgingOptions),
      hedgingBudget: hedging.budget,
      faults: injector.rules,
    };
    this.#stack = stack;
    this.stages = stack.names;
    this.#send = stack.build({ service: this.service, clock, random, telemetry: this.telemetry });
  }

  /**
   * Applies governance rules to the running stack now, all or nothing: from the next call on,
   * the load balancer picks by `strategy` and routes by `routing` (ejected instances stay
   * ejected), and the retry, hedging, attempt-timeout, deadline, breaker and fault-injection
   * stages run on the rules' numbers. Rules are an overlay on the client's options: a field left
   * out returns to what the client was built with (`applyRules({})` restores it). Calls in
   * flight are neither dropped nor failed: each finishes on the policy it started with. Applying
   * the same rules again keeps what the stages have learnt (budgets, latencies, breaker counts).
   *
   * @param version the rules' version (from the rules store), reported by {@link describe} and in the `rules-applied` event.
   * @throws ConfigError naming the field, and nothing changes: an invalid field (its dotted
   *   path, e.g. "retry.budget.retryShare"), or one this client cannot apply: `strategy` or
   *   `routing` when it was given a strategy object, `breaker` with `breakers: false`, or
   *   `retry`, `hedging`, `attemptTimeoutMs`, `deadlineMs`, `faults` when a stack edit removed or
   *   replaced that stage.
   * @example
   * users.applyRules({ retry: { maxAttempts: 1 }, attemptTimeoutMs: 500 }, 8);
   * users.applyRules({}); // back to the code's options
   */
  applyRules(rules: ClientRules, version?: number): void {
    const valid = parseClientRules(rules);
    checkVersion(version);
    this.#plan(valid)();
    this.#rules = valid;
    this.#rulesVersion = version;
    if (this.telemetry.enabled) {
      this.telemetry.emit({
        type: 'rules-applied',
        service: this.service,
        version,
        fields: ruleFields.filter((field) => valid[field] !== undefined),
      });
    }
  }

  /**
   * Evaluates candidate rules beside the live ones on every attempt from now on, changing
   * nothing about any call (same instance, same timing, same reply): the candidate's routing
   * (the route it would take, and whether the instance picked live is outside its destination:
   * "would route elsewhere") and its faults (whether it would delay or abort the attempt, drawn
   * from `dryRunRandom`, never applied). Each reroute and fault is a `dry-run` telemetry event;
   * {@link describe} counts them. A new candidate replaces the one in progress (counts start
   * again); `undefined` stops the dry run. Without one, it costs nothing.
   *
   * @throws ConfigError as {@link applyRules} would for these rules; the dry run in progress stays.
   * @example
   * users.dryRun({ routing: { default: { to: { version: 'v2' } } } }, 9);
   * const { dryRun } = users.describe(); // dryRun?.routedElsewhere: calls v2 would have taken elsewhere
   * users.dryRun(undefined);
   */
  dryRun(rules: ClientRules | undefined, version?: number): void {
    if (rules === undefined) {
      this.#selection.dry = undefined;
      return;
    }
    const valid = parseClientRules(rules);
    checkVersion(version);
    this.#plan(valid);
    const caller = this.#caller === undefined ? {} : { caller: this.#caller };
    this.#selection.dry = new DryRun({
      service: this.service,
      version,
      router:
        this.#own.balancer === undefined
          ? undefined
          : new Router(valid.routing ?? this.#base.routing, { ...caller, random: this.#dryRunRandom }),
      faults:
        this.#own.faults === undefined
          ? undefined
          : new FaultInjector({ rules: valid.faults ?? this.#base.faults, ...caller }),
      live: this.#own.faults,
      random: this.#dryRunRandom,
      telemetry: this.telemetry,
    });
  }

  // Checks everything these rules ask of the stack, changing nothing, and returns what applies
  // them; that can only fail on the breakers' combined thresholds, checked before anything changes.
  #plan(rules: ClientRules): () => void {
    const own = this.#own;
    const base = this.#base;
    const steps: Array<() => void> = [];
    const unsupported = (field: keyof ClientRules, why: string): ConfigError =>
      new ConfigError(field, `this client cannot apply it: ${why}`);

    const balancer = own.balancer;
    if (balancer === undefined) {
      const why = 'it was given a strategy object, and rules change only its own load balancer';
      if (rules.strategy !== undefined) throw unsupported('strategy', why);
      if (rules.routing !== undefined) throw unsupported('routing', why);
    } else {
      const strategy = this.#strategyFor(balancer, rules.strategy);
      const routing = rules.routing ?? base.routing;
      // Compiled once here so that the update below cannot fail half-way.
      new Router(routing, this.#caller === undefined ? {} : { caller: this.#caller });
      steps.push(() => {
        if (balancer.strategy !== strategy) balancer.setStrategy(strategy);
        balancer.update(routing);
      });
    }

    const retryStage = own.retry;
    if (retryStage === undefined) {
      if (rules.retry !== undefined) throw unsupported('retry', 'a stack edit removed or replaced its "retry" stage');
    } else {
      const given = rules.retry;
      const on = given === undefined ? base.retryOn : given !== false;
      const limits: RetryLimits = { ...base.retry, ...(given === undefined || given === false ? {} : limitsOf(given)) };
      const budget =
        given === undefined || given === false || given.budget === undefined
          ? base.retryBudget
          : given.budget === false
            ? undefined
            : this.#budgetFor(given.budget, 'retry.budget', base.retryBudget, retryStage.retry.budget);
      // The combination with the client's own fields, as the constructor checks it.
      new Retry({ ...limits, budget: false });
      steps.push(() => {
        retryStage.retry.update({ ...limits, budget: budget ?? false });
        retryStage.on = on;
      });
    }

    const hedging = own.hedging;
    if (hedging === undefined) {
      if (rules.hedging !== undefined)
        throw unsupported('hedging', 'a stack edit removed or replaced its "hedging" stage');
    } else {
      const given = rules.hedging;
      if (given === false || (given === undefined && base.hedging === false)) {
        steps.push(() => hedging.update(false));
      } else {
        const limits: HedgingLimits = {
          ...(base.hedging === false ? {} : base.hedging),
          ...(given === undefined ? {} : hedgingLimitsOf(given)),
        };
        const budget =
          given?.budget === undefined
            ? base.hedgingBudget
            : this.#budgetFor(given.budget, 'hedging.budget', base.hedgingBudget, hedging.budget);
        new Hedging({ ...limits, budget, clock: this.#clock });
        steps.push(() => hedging.update({ ...limits, budget }));
      }
    }

    const timeout = own.timeout;
    if (timeout === undefined) {
      if (rules.attemptTimeoutMs !== undefined) {
        throw unsupported('attemptTimeoutMs', 'a stack edit removed or replaced its "attempt-timeout" stage');
      }
    } else {
      const limit = rules.attemptTimeoutMs ?? base.attemptTimeoutMs;
      steps.push(() => timeout.update(limit));
    }

    const deadlineStage = own.deadline;
    if (deadlineStage === undefined) {
      if (rules.deadlineMs !== undefined) {
        throw unsupported('deadlineMs', 'a stack edit removed or replaced its "deadline" stage');
      }
    } else {
      const limit = rules.deadlineMs ?? base.deadlineMs;
      steps.push(() => deadlineStage.update(limit));
    }

    const injector = own.faults;
    if (injector === undefined) {
      if (rules.faults !== undefined) {
        throw unsupported('faults', 'a stack edit removed or replaced its "fault-injection" stage');
      }
    } else {
      const faults = rules.faults ?? base.faults;
      new FaultInjector({ rules: faults, ...(this.#caller === undefined ? {} : { caller: this.#caller }) });
      steps.push(() => injector.update(faults));
    }

    const breakers = this.breakers;
    let first: (() => void) | undefined;
    if (breakers === undefined || !own.breaker) {
      if (rules.breaker !== undefined) {
        throw unsupported(
          'breaker',
          'it has no per-instance breakers ("breakers: false", or a stack edit removed its "breaker" stage)',
        );
      }
    } else if (rules.breaker !== undefined || this.#breakerRules) {
      const thresholds = rules.breaker;
      // The registry checks the thresholds with its own before it changes anything.
      first = () => {
        breakers.configure(this.service, thresholds);
        this.#breakerRules = thresholds !== undefined;
      };
    }
    return () => {
      first?.();
      for (const step of steps) step();
    };
  }

  // The strategy the rules name: the client's own when they name it (or none), the one in use
  // when they name that, else a new one.
  #strategyFor(balancer: LoadBalancer, name: StrategyName | undefined): Strategy {
    const built = this.#base.strategy as Strategy;
    if (name === undefined || name === built.name) return built;
    if (name === balancer.strategy.name) return balancer.strategy;
    try {
      return createStrategy(name, { clock: this.#clock, random: this.#random });
    } catch (error) {
      if (ConfigError.is(error)) throw new ConfigError('strategy', error.problem);
      throw error;
    }
  }

  // A budget from the rules' numbers over the client's own budget's; the budget in use when it
  // has those numbers already, so that applying the same rules again keeps its balance.
  #budgetFor(
    given: RetryBudgetRules,
    field: string,
    built: RetryBudget | undefined,
    current: RetryBudget | undefined,
  ): RetryBudget {
    const numbers = {
      ...(built === undefined
        ? {}
        : { retryShare: built.retryShare, minRetriesPerSecond: built.minRetriesPerSecond, ttlMs: built.ttlMs }),
      ...given,
    };
    checkRetryBudgetOptions(numbers, field);
    const budget = new RetryBudget({ ...numbers, clock: this.#clock });
    for (const known of [built, current]) if (known !== undefined && sameBudget(known, budget)) return known;
    return budget;
  }

  /**
   * Sends a request and returns the reply, whatever its status.
   * @throws NoInstancesError when no healthy instance is known.
   * @throws ConnectionError when the chosen instances did not answer.
   * @throws TimeoutError when an attempt or the deadline ran out.
   * @throws CircuitOpenError when every instance's breaker refused the call.
   * @throws RegistryUnavailableError when the service was never found and the registry is down.
   * @throws ConfigError for a per-call option out of range.
   */
  request<T = unknown, B = unknown>(request: ServiceRequest<B>): Promise<Reply<T>> {
    const call: Call = {
      service: this.service,
      method: request.method === undefined ? 'GET' : request.method.toUpperCase(),
      path: request.path,
      ...(request.template === undefined ? {} : { template: request.template }),
      headers: request.headers ?? {},
      ...(request.body === undefined ? {} : { body: request.body }),
    };
    return this.#send(call, this.#context(request)) as Promise<Reply<T>>;
  }

  /**
   * The instance a request would be sent to now, picked as the "select" stage picks one
   * (discovery's instances, minus `avoid`, through the strategy: routing rules applied, ejected
   * instances skipped), without sending anything. For traffic the transport does not carry,
   * such as a WebSocket upgrade that a gateway passes through.
   * @throws NoInstancesError when no instance is left to pick, and what discovery throws.
   * @example
   * const picked = await users.pick({ path: '/users/1' });
   */
  async pick(
    request: Pick<ServiceRequest, 'method' | 'path' | 'headers'>,
    avoid?: ReadonlySet<string>,
  ): Promise<ServiceInstance> {
    const call: Call = {
      service: this.service,
      method: request.method === undefined ? 'GET' : request.method.toUpperCase(),
      path: request.path,
      headers: request.headers ?? {},
    };
    const known = await this.#source.instances(this.service);
    const candidates = avoid === undefined ? known : known.filter((i) => !avoid.has(i.id));
    const instance = this.strategy.select(candidates, call);
    if (instance === undefined) throw noInstance(this.service, known, candidates);
    return instance;
  }

  /**
   * GETs `path` and returns the decoded body.
   * @throws UpstreamStatusError for a status outside 2xx, and what {@link request} throws.
   */
  get<T = unknown>(path: string, options?: CallOptions): Promise<T> {
    return this.#bodyOf<T>('GET', path, undefined, options);
  }

  /**
   * HEADs `path` and returns the answer's headers.
   * @throws UpstreamStatusError for a status outside 2xx, and what {@link request} throws.
   */
  async head(path: string, options?: CallOptions): Promise<Readonly<Record<string, string>>> {
    const reply = await this.request({ ...options, method: 'HEAD', path });
    return this.#checked(reply).headers;
  }

  /**
   * DELETEs `path` and returns the decoded answer (often empty).
   * @throws UpstreamStatusError for a status outside 2xx, and what {@link request} throws.
   */
  delete<T = unknown>(path: string, options?: CallOptions): Promise<T> {
    return this.#bodyOf<T>('DELETE', path, undefined, options);
  }

  /**
   * POSTs `body` (as JSON) to `path` and returns the decoded answer. A POST is not retried once
   * it may have arrived, unless `idempotent: true` or an `Idempotency-Key` header says it may.
   * @throws UpstreamStatusError for a status outside 2xx, and what {@link request} throws.
   */
  post<T = unknown, B = unknown>(path: string, body: B, options?: CallOptions): Promise<T> {
    return this.#bodyOf<T>('POST', path, body, options);
  }

  /**
   * PUTs `body` (as JSON) to `path` and returns the decoded answer.
   * @throws UpstreamStatusError for a status outside 2xx, and what {@link request} throws.
   */
  put<T = unknown, B = unknown>(path: string, body: B, options?: CallOptions): Promise<T> {
    return this.#bodyOf<T>('PUT', path, body, options);
  }

  /**
   * PATCHes `path` with `body` (as JSON) and returns the decoded answer; like POST, not repeated
   * unless marked idempotent.
   * @throws UpstreamStatusError for a status outside 2xx, and what {@link request} throws.
   */
  patch<T = unknown, B = unknown>(path: string, body: B, options?: CallOptions): Promise<T> {
    return this.#bodyOf<T>('PATCH', path, body, options);
  }

  /**
   * How the client is governed now, read-only: strategy, stages, the retry budget left, the
   * routing and fault rules in force, panic, the rules applied and the dry run's counts with
   * their versions, and for each of `instances` (those discovery
   * lists, say) its breaker's state and what the strategy knows of its load. Asks nothing of
   * discovery or the network, and changes nothing (no breaker is made for an instance without one).
   *
   * @example
   * const status = users.describe(await discovery.instances('users'));
   * const open = status.instances.filter((i) => i.breaker?.state === 'open').map((i) => i.id);
   */
  describe(instances: readonly ServiceInstance[] = []): ClientStatus {
    const strategy = this.strategy;
    const balancer = strategy instanceof LoadBalancer ? strategy : undefined;
    const own = this.#own.retry;
    const budget = own === undefined ? this.#own.otherRetry?.budget : own.on ? own.retry.budget : undefined;
    const shown = instances.length > maxDescribedInstances ? instances.slice(0, maxDescribedInstances) : instances;
    return {
      service: this.service,
      strategy: strategy.name,
      stages: this.stages,
      retryBudget:
        budget === undefined
          ? undefined
          : {
              balance: budget.balance,
              retryShare: budget.retryShare,
              minRetriesPerSecond: budget.minRetriesPerSecond,
              ttlMs: budget.ttlMs,
            },
      routingRules: balancer?.rules,
      lastRoute: balancer?.lastRoute,
      faultRules: this.#own.faults?.rules ?? faultRulesOf(this.#stack),
      panic: balancer?.panicking ?? false,
      rules: this.#rules,
      rulesVersion: this.#rulesVersion,
      dryRunVersion: this.#selection.dry?.version,
      dryRun: this.#selection.dry?.status(),
      instances: shown.map((instance) => ({
        id: instance.id,
        breaker: this.breakers?.find(instance.id)?.toJSON(),
        load: strategy.describeInstance(instance),
      })),
      instancesLeftOut: instances.length - shown.length,
    };
  }

  /** Releases the transport's connections, the stages' subscriptions, and the breakers when the client made them. */
  async close(): Promise<void> {
    this.#stack.close();
    if (this.#ownsBreakers) await this.breakers?.close();
    if (this.#ownsTransport) await this.#transport.close();
  }

  async #bodyOf<T>(method: string, path: string, body: unknown, options: CallOptions | undefined): Promise<T> {
    const reply = await this.request<T>(
      options === undefined ? { method, path, body } : { ...options, method, path, body },
    );
    return this.#checked(reply).body;
  }

  #checked<T>(reply: Reply<T>): Reply<T> {
    if (reply.status < 200 || reply.status > 299) {
      throw new UpstreamStatusError(this.service, reply.instance.id, reply.status, reply.body);
    }
    return reply;
  }

  #context(options: CallOptions): CallContext {
    const inbound = inboundScope.current();
    let deadline = inbound?.deadline;
    const timeoutMs = options.timeoutMs;
    if (timeoutMs !== undefined) {
      if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
        throw new ConfigError('timeoutMs', `must be a positive number of milliseconds, got ${timeoutMs}`);
      }
      const own = this.#clock.now() + timeoutMs;
      deadline = deadline === undefined ? own : Math.min(deadline, own);
    }
    const mine = options.signal;
    const theirs = inbound?.signal;
    if (deadline === undefined && mine === undefined && theirs === undefined) {
      return options.retry === undefined && options.idempotent === undefined
        ? new CallContext()
        : new CallContext({
            retry: options.retry !== false,
            ...(options.idempotent === undefined ? {} : { idempotent: options.idempotent }),
          });
    }
    const signal = mine === undefined ? theirs : theirs === undefined ? mine : AbortSignal.any([mine, theirs]);
    return new CallContext({
      ...(signal === undefined ? {} : { signal }),
      ...(deadline === undefined ? {} : { deadline }),
      ...(options.retry === false ? { retry: false } : {}),
      ...(options.idempotent === undefined ? {} : { idempotent: options.idempotent }),
    });
  }
}

/** The stages of a client that rules can change: its own, while a stack edit left them in place. */
interface OwnStages {
  /** The load balancer it made (with a strategy name, or none); undefined with a strategy object. */
  readonly balancer: LoadBalancer | undefined;
  readonly retry: RetrySwitch | undefined;
  readonly hedging: Hedging | undefined;
  readonly timeout: Timeout | undefined;
  readonly deadline: Deadline | undefined;
  readonly faults: FaultInjector | undefined;
  /** True while its per-instance breaker stage runs on {@link ServiceClient.breakers}. */
  readonly breaker: boolean;
  /** A Retry put in place of its own by a stack edit, for describe(). */
  readonly otherRetry: Retry | undefined;
}

/** What a client was built with, as its stages hold it. */
interface BaseOptions {
  readonly strategy: Strategy | undefined;
  readonly routing: RoutingRules;
  readonly retryOn: boolean;
  readonly retry: RetryLimits;
  readonly retryBudget: RetryBudget | undefined;
  readonly attemptTimeoutMs: number | false;
  readonly deadlineMs: number | false;
  readonly hedging: HedgingLimits | false;
  readonly hedgingBudget: RetryBudget;
  readonly faults: readonly FaultRule[];
}

/** What the "select" stage reads per attempt beside the strategy. */
interface Selection {
  dry: DryRun | undefined;
}

/** The fields of {@link ClientRules}, in the order events list them. */
const ruleFields = [
  'strategy',
  'routing',
  'retry',
  'attemptTimeoutMs',
  'deadlineMs',
  'hedging',
  'breaker',
  'faults',
] as const satisfies ReadonlyArray<keyof ClientRules>;

/**
 * The "retry" stage of a client: its {@link Retry}, or failover alone while retries are off
 * (`retry: false`), switched by rules between calls.
 */
class RetrySwitch implements Stage {
  readonly name = 'retry';
  readonly role = 'retry';
  readonly level = 'call';
  readonly retry: Retry;
  /** True: the Retry runs; false: failover only. */
  on: boolean;
  readonly #failover = failoverFilter(3);

  constructor(retry: Retry, on: boolean) {
    this.retry = retry;
    this.on = on;
  }

  make(env: StageEnv): Filter {
    const retry = this.retry.make(env);
    const failover = this.#failover;
    return (call, context, next) => (this.on ? retry(call, context, next) : failover(call, context, next));
  }
}

function limitsOf(options: RetryLimits): RetryLimits {
  const { maxAttempts, backoffBaseMs, backoffMaxMs } = options;
  return {
    ...(maxAttempts === undefined ? {} : { maxAttempts }),
    ...(backoffBaseMs === undefined ? {} : { backoffBaseMs }),
    ...(backoffMaxMs === undefined ? {} : { backoffMaxMs }),
  };
}

function hedgingLimitsOf(options: HedgingLimits): HedgingLimits {
  const { delayMs, percentile, minSamples, windowMs } = options;
  return {
    ...(delayMs === undefined ? {} : { delayMs }),
    ...(percentile === undefined ? {} : { percentile }),
    ...(minSamples === undefined ? {} : { minSamples }),
    ...(windowMs === undefined ? {} : { windowMs }),
  };
}

function sameBudget(a: RetryBudget, b: RetryBudget): boolean {
  return a.retryShare === b.retryShare && a.minRetriesPerSecond === b.minRetriesPerSecond && a.ttlMs === b.ttlMs;
}

function checkVersion(version: number | undefined): void {
  if (version !== undefined && !(Number.isSafeInteger(version) && version >= 0)) {
    throw new ConfigError('version', `must be a whole number >= 0, got ${version}`);
  }
}

// A fault-injection stage put in place of the client's own by a stack edit.
function faultRulesOf(stack: Stack): readonly FaultRule[] {
  const found = stack.find('fault-injection');
  return found instanceof FaultInjector ? found.rules : [];
}

/** A stage switched off: present by name, so that edits can refer to it, but left out of the chain. */
function off(name: string, role: Stage['role'], level: Stage['level']): Stage {
  return { name, role, level, make: () => undefined };
}

/**
 * The "select" stage: discovery's instances, minus those the attempt must avoid, through the
 * strategy (a LoadBalancer applies routing rules and skips ejected instances first). It writes
 * the instance into the attempt's context, tells the strategy when the attempt starts and
 * ends, and reports the pick and the attempt to telemetry.
 */
function selectStage(source: InstanceSource, strategy: Strategy, selection: Selection): Stage {
  return {
    name: 'select',
    role: 'select',
    make(env: StageEnv): Filter {
      const { clock, telemetry } = env;
      const balancer = strategy instanceof LoadBalancer ? strategy : undefined;
      return async (call, context, next) => {
        const known = await source.instances(call.service);
        const avoid = context.avoid;
        const candidates = avoid === undefined ? known : known.filter((i) => !avoid.has(i.id));
        const instance = strategy.select(candidates, call);
        if (instance === undefined) throw noInstance(call.service, known, candidates);
        context.instance = instance;
        const dry = selection.dry;
        if (dry !== undefined) dry.observe(call, context.attempt, instance, candidates, balancer?.lastRoute);
        // The strategy that picked hears how its attempt went, even if rules swap it meanwhile.
        const picker = balancer === undefined ? strategy : balancer.strategy;
        const feedback = picker.usesFeedback;
        const observed = telemetry.enabled;
        if (!feedback && !observed) return next(call, context);
        if (observed) {
          telemetry.emit({
            type: 'instance-picked',
            service: call.service,
            instance: instance.id,
            attempt: context.attempt,
            strategy: strategy.name,
            route: balancer?.lastRoute,
            panic: balancer?.panicking ?? false,
          });
          telemetry.emit({
            type: 'attempt-started',
            service: call.service,
            instance: instance.id,
            attempt: context.attempt,
            method: call.method,
            template: call.template,
          });
        }
        if (feedback) picker.attemptStarted(instance);
        const started = clock.now();
        let reply: Reply | undefined;
        let error: unknown;
        try {
          reply = await next(call, context);
          return reply;
        } catch (caught) {
          error = caught;
          throw caught;
        } finally {
          const durationMs = clock.now() - started;
          const failed = reply === undefined || reply.status >= 500;
          if (feedback) picker.attemptEnded(instance, durationMs, failed);
          if (telemetry.enabled) {
            telemetry.emit({
              type: 'attempt-ended',
              service: call.service,
              instance: instance.id,
              attempt: context.attempt,
              method: call.method,
              template: call.template,
              outcome: reply === undefined && context.aborted ? 'cancelled' : failed ? 'failure' : 'success',
              status: reply?.status,
              error: reply === undefined ? codeOf(error) : undefined,
              durationMs,
            });
          }
        }
      };
    },
  };
}

/** The "transport" stage: sends the attempt, with the remaining time in {@link timeoutHeader} when the call has a deadline. */
function transportStage(transport: Transport): Stage {
  return {
    name: 'transport',
    role: 'transport',
    level: 'attempt',
    make(env: StageEnv): Filter {
      const { clock } = env;
      return (call, context) => {
        const instance = context.instance;
        if (instance === undefined) {
          return Promise.reject(
            new ConfigError('stack.transport', 'no instance chosen: the stack needs a "select" stage'),
          );
        }
        // No clock reading for a call without a deadline: most calls have none.
        const remaining = context.deadline === undefined ? undefined : context.remainingMs(clock.now());
        const sent =
          remaining === undefined
            ? call
            : { ...call, headers: { ...call.headers, [timeoutHeader]: String(Math.floor(remaining)) } };
        return transport.send(sent, instance, context);
      };
    },
  };
}

function codeOf(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string')
    return error.code;
  return error instanceof Error ? error.name : 'error';
}

function noInstance(
  service: string,
  known: readonly ServiceInstance[],
  candidates: readonly ServiceInstance[],
): NoInstancesError {
  if (known.length === 0) return new NoInstancesError(service);
  if (candidates.length === 0) {
    return new NoInstancesError(service, `all ${known.length} known instances failed this call`);
  }
  return new NoInstancesError(service, `none of the ${known.length} known instances matches the call's route`);
}
