import { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import {
  ConfigError,
  Emitter,
  systemClock,
  type Clock,
  type Event,
  type TelemetryEvent,
  type Timer,
} from '@trellis/core';
import { SlidingWindowCounter, type AsyncRateLimiter, type Decision } from '@trellis/resilience';

/** Where a cluster limit writes its two lines (falling back, going back): `console`, pino, the app's `http.log`. */
export interface ClusterRateLimiterLogger {
  warn(message: string): void;
  info(message: string): void;
}

export interface ClusterRateLimiterOptions {
  /** The limit's name: part of its Redis keys and the `limit` label of its metrics, e.g. "search". */
  readonly name: string;
  /** Calls allowed in each window across every instance sharing the limit. */
  readonly limit: number;
  /** The window, in whole seconds as milliseconds (Redis counts with a TTL in seconds); default 1 000. */
  readonly windowMs?: number;
  /**
   * The Redis to keep the count in: a URL (`redis://127.0.0.1:6379/0`), for which the limiter
   * makes and closes its own ioredis client with bounded queues, or an ioredis client of yours
   * (left open by `close()`; give it `enableOfflineQueue: false` and a `commandTimeout`, see
   * docs/resilience/rate-limit.md#cluster-rate-limits).
   */
  readonly redis: string | Redis;
  /**
   * Longest a decision waits for Redis; past it, that decision and the next ones are taken from
   * this instance's local share until a probe finds Redis answering in time again. Default 5 ms.
   */
  readonly budgetMs?: number;
  /**
   * How many instances share the limit now; the local share is `limit / instances()` (at least
   * 1). Default: what the app the limiter is used in knows of its own service from discovery,
   * or else 1, so that an instance alone falls back to the whole limit. Called on each local decision: keep it cheap.
   */
  readonly instances?: () => number;
  /** While falling back, how often Redis is probed (one PING at a time, within the budget); default 1 000 ms. */
  readonly probeIntervalMs?: number;
  /** Prefix of the Redis keys; default "trellis:ratelimit". A key is `<prefix>:<name>:_`, or `…:k:<key>` per key. */
  readonly keyPrefix?: string;
  /** Default `console`; `false` for none (the metric still says it). */
  readonly logger?: ClusterRateLimiterLogger | false;
  readonly clock?: Clock;
}

const granted: Decision = Object.freeze({ granted: true });

function retryAfter(ms: number): Decision {
  return { granted: false, retryAfterMs: Math.max(1, Math.ceil(ms)) };
}

const wholeKey = '_';

/**
 * One rate limit shared by every instance of a service: at most `limit` calls per `windowMs`
 * across all of them, counted in Redis (rate-limiter-flexible's atomic INCR + PEXPIRE script
 * over ioredis; a fixed window per key). Usable wherever a local limiter is: the `RateLimit`
 * stage of a client, an app's `limitInbound({ rate })`, a controller's `@RateLimit({ limiter })`,
 * with the same answers (RateLimitedError, 429 with Retry-After).
 *
 * No decision waits longer than `budgetMs`: when Redis is not connected, errs, or has not
 * answered in time, the decision is taken from this instance's share of the limit
 * (`limit / instances()`, a sliding window kept here), and so are the next ones, without asking
 * Redis, until a probe (one PING at a time, every `probeIntervalMs`, or at once when the client
 * reconnects) answers within the budget. Falling back and going back each write one log line
 * and one `rate-limit-fallback-changed` event (the metric `trellis_ratelimit_fallback{limit}`);
 * each local decision is a `rate-limit-decided-locally` event. Until Redis first answers, the
 * limiter decides locally without a word, and says so once the first probe still finds it away.
 *
 * @throws ConfigError from the constructor for an option out of range, naming it.
 * @example
 * const search = new ClusterRateLimiter({ name: 'search', limit: 600, redis: 'redis://127.0.0.1:6379' });
 * app.limitInbound({ rate: search });
 * // at shutdown, after the app: await search.close();
 */
export class ClusterRateLimiter implements AsyncRateLimiter {
  readonly name: string;
  readonly limit: number;
  readonly windowMs: number;
  readonly budgetMs: number;
  readonly probeIntervalMs: number;
  readonly #redis: Redis;
  readonly #ownsRedis: boolean;
  readonly #store: RateLimiterRedis;
  readonly #clock: Clock;
  readonly #logger: ClusterRateLimiterLogger | undefined;
  readonly #ownCount: (() => number) | undefined;
  #givenCount: (() => number) | undefined;
  readonly #events = new Emitter<TelemetryEvent>();
  /**
   * Falling back to a local share, and going back; local decisions. Subscribe metrics with
   * `metrics.subscribe(limiter)`. A listener that comes while a fallback already said is on is
   * told of it at once, so that a gauge fed late (an app takes a key's limiter over at its first
   * request) does not wait for the next change.
   */
  readonly onEvent: Event<TelemetryEvent> = (listener) => {
    const subscription = this.#events.event(listener);
    if (this.#fallback !== undefined && this.#announced) listener(this.#fallbackChanged(this.#fallback));
    return subscription;
  };
  readonly #whole: ClusterKeyLimiter;
  /** Why decisions are local now; undefined while the shared limit applies. */
  #fallback: string | undefined = 'not connected yet';
  /** Whether the current fallback was said (log, event); the silent one is the start's. */
  #announced = false;
  #probeTimer: Timer | undefined;
  #probing = false;
  #closed = false;
  readonly #onReady = (): void => this.#probe();
  readonly #onError = (): void => undefined;
  readonly #waiters = new Set<() => void>();

  constructor(options: ClusterRateLimiterOptions) {
    const name: unknown = options.name;
    if (typeof name !== 'string' || name === '' || /\s/.test(name)) {
      throw new ConfigError('name', `must be a non-empty string without spaces, got ${JSON.stringify(name)}`);
    }
    const { limit } = options;
    if (!(Number.isInteger(limit) && limit >= 1))
      throw new ConfigError('limit', `must be an integer >= 1, got ${limit}`);
    const windowMs = options.windowMs ?? 1_000;
    if (!(Number.isInteger(windowMs) && windowMs >= 1_000 && windowMs % 1_000 === 0)) {
      throw new ConfigError(
        'windowMs',
        `must be a whole number of seconds in milliseconds (1000, 60000, …), got ${windowMs}`,
      );
    }
    const budgetMs = options.budgetMs ?? 5;
    if (!(Number.isFinite(budgetMs) && budgetMs > 0)) {
      throw new ConfigError('budgetMs', `must be a positive number of milliseconds, got ${budgetMs}`);
    }
    const probeIntervalMs = options.probeIntervalMs ?? 1_000;
    if (!(Number.isFinite(probeIntervalMs) && probeIntervalMs > 0)) {
      throw new ConfigError('probeIntervalMs', `must be a positive number of milliseconds, got ${probeIntervalMs}`);
    }
    if (options.instances !== undefined && typeof options.instances !== 'function') {
      throw new ConfigError('instances', 'must be a function returning how many instances share the limit');
    }
    const keyPrefix = options.keyPrefix ?? 'trellis:ratelimit';
    if (typeof keyPrefix !== 'string') throw new ConfigError('keyPrefix', 'must be a string');
    const logger = options.logger ?? console;
    if (logger !== false && (typeof logger.warn !== 'function' || typeof logger.info !== 'function')) {
      throw new ConfigError('logger', 'must have warn(message) and info(message), or be false');
    }
    this.name = name;
    this.limit = limit;
    this.windowMs = windowMs;
    this.budgetMs = budgetMs;
    this.probeIntervalMs = probeIntervalMs;
    this.#clock = options.clock ?? systemClock;
    this.#logger = logger === false ? undefined : logger;
    this.#ownCount = options.instances;
    this.#redis = redisOf(options.redis);
    this.#ownsRedis = typeof options.redis === 'string';
    // Without a listener, an 'error' event of the client would crash the process; the limiter
    // learns of Redis being away from its commands and probes instead.
    this.#redis.on('error', this.#onError);
    this.#redis.on('ready', this.#onReady);
    this.#store = new RateLimiterRedis({
      storeClient: this.#redis,
      keyPrefix: `${keyPrefix}:${name}`,
      points: limit,
      duration: windowMs / 1_000,
      // Not connected: fail at once (and decide locally) rather than wait in the client's queue.
      rejectIfRedisNotReady: true,
      // A key over its limit is refused from memory for the rest of its window, sparing Redis a
      // round trip per refused call under a flood (rate-limiter-flexible's own block list).
      inMemoryBlockOnConsumed: limit + 1,
    });
    this.#whole = this.#view(wholeKey);
    if (this.#redis.status === 'ready') this.#probe();
    else this.#scheduleProbe();
  }

  /** True while decisions are taken from this instance's local share (Redis away or slow, or not yet connected). */
  get fallback(): boolean {
    return this.#fallback !== undefined;
  }

  /** The local share now: `limit / instances`, rounded down, at least 1. */
  get share(): number {
    const count = (this.#ownCount ?? this.#givenCount)?.() ?? 1;
    const n = Number.isFinite(count) && count >= 1 ? count : 1;
    return Math.max(1, Math.floor(this.limit / n));
  }

  /** The limiter never holds state worth keeping here: the count is in Redis. */
  get idle(): boolean {
    return this.#whole.idle;
  }

  /**
   * Takes `permits` (default 1) of the whole limit. Resolves within `budgetMs` (plus the event
   * loop's lag); never rejects for Redis.
   * @throws ConfigError (rejects) when `permits` exceeds the limit.
   */
  tryAcquire(permits = 1): Promise<Decision> {
    return this.#whole.tryAcquire(permits);
  }

  /**
   * The same limit counted per key (per caller, per user): `limit` per window for each key
   * across the cluster. Hold the result in a bounded `PerKey`, which also gives it to an app:
   * `{ perKey: new PerKey({ create: (k) => search.forKey(k) }), key: (req) => req.ip }`.
   */
  forKey(key: string): AsyncRateLimiter {
    return this.#view(`k:${key}`);
  }

  #view(storeKey: string): ClusterKeyLimiter {
    return new ClusterKeyLimiter({
      storeKey,
      decide: (view, permits) => this.#decide(view, storeKey, permits),
      onEvent: this.onEvent,
      countInstancesWith: (count) => this.countInstancesWith(count),
    });
  }

  countInstancesWith(count: () => number): void {
    this.#givenCount = count;
  }

  /**
   * Resolves true once the shared limit applies (Redis connected and answering in time), false
   * when `timeoutMs` passes first. For start-up and tests; decisions never need it.
   */
  ready(timeoutMs = 5_000): Promise<boolean> {
    if (this.#fallback === undefined) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (): void => {
        this.#waiters.delete(done);
        timer.cancel();
        resolve(this.#fallback === undefined);
      };
      const timer = this.#clock.setTimer(timeoutMs, done);
      this.#waiters.add(done);
    });
  }

  /** Stops probing and closes the Redis client if the limiter made it; later decisions are local. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#probeTimer?.cancel();
    this.#probeTimer = undefined;
    for (const waiter of [...this.#waiters]) waiter();
    this.#redis.off('ready', this.#onReady);
    if (!this.#ownsRedis) {
      this.#redis.off('error', this.#onError);
      return;
    }
    const redis = this.#redis;
    // Between reconnection attempts there is no socket: disconnect() only stops the retries.
    const open = redis.status === 'connect' || redis.status === 'ready' || redis.status === 'connecting';
    // Else resolves once the socket is closed (destroyed after `disconnectTimeout` if Redis hangs).
    const ended = open ? new Promise<void>((resolve) => redis.once('end', () => resolve())) : undefined;
    redis.disconnect();
    await ended;
  }

  // One decision for `storeKey`, with `view`'s local share as the way out.
  #decide(view: ClusterKeyLimiter, storeKey: string, permits: number): Promise<Decision> {
    if (!(Number.isInteger(permits) && permits >= 1 && permits <= this.limit)) {
      return Promise.reject(
        new ConfigError('permits', `must be an integer from 1 to the limit of ${this.limit}, got ${permits}`),
      );
    }
    if (this.#fallback !== undefined || this.#closed) return Promise.resolve(this.#local(view, permits));
    return new Promise((resolve) => {
      let settled = false;
      const late = (): void => {
        if (settled) return;
        settled = true;
        this.#fallBack(`Redis did not answer within the budget of ${this.budgetMs} ms`);
        resolve(this.#local(view, permits));
      };
      // Timers run before the loop reads sockets: after a stall of this process (GC, a busy
      // handler) the answer may be waiting unread. One turn of the loop lets it be read first,
      // so that the process's own lag is not taken for a slow Redis.
      const timer = this.#clock.setTimer(this.budgetMs, () => setImmediate(late));
      // The answer that comes after the budget is dropped; what it counted stays counted in Redis.
      this.#store.consume(storeKey, permits).then(
        () => {
          if (settled) return;
          settled = true;
          timer.cancel();
          resolve(granted);
        },
        (answer: unknown) => {
          if (settled) return;
          settled = true;
          timer.cancel();
          if (answer instanceof RateLimiterRes) {
            resolve(retryAfter(answer.msBeforeNext));
            return;
          }
          this.#fallBack(this.#reasonOf(answer));
          resolve(this.#local(view, permits));
        },
      );
    });
  }

  #local(view: ClusterKeyLimiter, permits: number): Decision {
    const share = this.share;
    const decision =
      permits > share
        ? retryAfter(this.windowMs)
        : view.localShare(share, this.windowMs, this.#clock).tryAcquire(permits);
    if (this.#events.hasListeners) {
      this.#events.emit({ type: 'rate-limit-decided-locally', limit: this.name, granted: decision.granted });
    }
    return decision;
  }

  #reasonOf(error: unknown): string {
    if (this.#redis.status !== 'ready') return `Redis is not connected (${this.#redis.status})`;
    return `Redis failed: ${error instanceof Error ? error.message : String(error)}`;
  }

  #fallBack(reason: string): void {
    if (this.#fallback !== undefined) return;
    this.#fallback = reason;
    this.#announce(reason);
    this.#scheduleProbe();
  }

  #announce(reason: string): void {
    this.#fallback = reason;
    this.#announced = true;
    const share = this.share;
    this.#logger?.warn(
      `cluster rate limit "${this.name}" falls back to this instance's share, ${share} per ${this.windowMs} ms: ${reason}`,
    );
    this.#events.emit(this.#fallbackChanged(reason, share));
  }

  #fallbackChanged(reason: string, share = this.share): TelemetryEvent {
    return { type: 'rate-limit-fallback-changed', limit: this.name, fallback: true, reason, share };
  }

  #scheduleProbe(): void {
    if (this.#closed || this.#probeTimer !== undefined) return;
    this.#probeTimer = this.#clock.setTimer(this.probeIntervalMs, () => {
      this.#probeTimer = undefined;
      this.#probe();
    });
  }

  // One PING at a time, and only on a connected client: a Redis that hangs costs one pending
  // command per probe, never a pile.
  #probe(): void {
    if (this.#closed || this.#fallback === undefined) return;
    if (this.#probing || this.#redis.status !== 'ready') {
      if (!this.#announced) this.#announce(this.#reasonOf(undefined));
      this.#scheduleProbe();
      return;
    }
    this.#probing = true;
    const started = this.#clock.now();
    let settled = false;
    const fail = (reason: string): void => {
      if (settled) return;
      settled = true;
      if (!this.#announced) this.#announce(reason);
      this.#scheduleProbe();
    };
    const timer = this.#clock.setTimer(this.budgetMs, () =>
      fail(`Redis did not answer within the budget of ${this.budgetMs} ms`),
    );
    this.#redis.ping().then(
      () => {
        this.#probing = false;
        if (settled) return;
        settled = true;
        timer.cancel();
        this.#recover(this.#clock.now() - started);
      },
      (error: unknown) => {
        this.#probing = false;
        timer.cancel();
        fail(this.#reasonOf(error));
      },
    );
  }

  #recover(ms: number): void {
    if (this.#closed) return;
    const wasAnnounced = this.#announced;
    this.#fallback = undefined;
    this.#announced = false;
    this.#probeTimer?.cancel();
    this.#probeTimer = undefined;
    if (wasAnnounced) {
      this.#logger?.info(`cluster rate limit "${this.name}" is shared again: Redis answered in ${Math.round(ms)} ms`);
      this.#events.emit({
        type: 'rate-limit-fallback-changed',
        limit: this.name,
        fallback: false,
        reason: undefined,
        share: this.share,
      });
    }
    for (const waiter of [...this.#waiters]) waiter();
  }
}

interface KeyLimiterParts {
  readonly storeKey: string;
  readonly decide: (view: ClusterKeyLimiter, permits: number) => Promise<Decision>;
  readonly onEvent: Event<TelemetryEvent>;
  readonly countInstancesWith: (count: () => number) => void;
}

/** The limit of one key (or the whole limit), with its own local share for when Redis is away. */
class ClusterKeyLimiter implements AsyncRateLimiter {
  readonly #parts: KeyLimiterParts;
  #local: SlidingWindowCounter | undefined;
  readonly onEvent: Event<TelemetryEvent>;

  constructor(parts: KeyLimiterParts) {
    this.#parts = parts;
    this.onEvent = parts.onEvent;
  }

  tryAcquire(permits = 1): Promise<Decision> {
    return this.#parts.decide(this, permits);
  }

  /** The count lives in Redis; only a local share in use is worth keeping. */
  get idle(): boolean {
    return this.#local === undefined || this.#local.idle;
  }

  countInstancesWith(count: () => number): void {
    this.#parts.countInstancesWith(count);
  }

  /** The local share's window, made again when the share changed (instances came or went). */
  localShare(share: number, windowMs: number, clock: Clock): SlidingWindowCounter {
    if (this.#local === undefined || this.#local.limit !== share) {
      this.#local = new SlidingWindowCounter({ limit: share, windowMs, clock });
    }
    return this.#local;
  }
}

function redisOf(redis: string | Redis): Redis {
  if (typeof redis === 'string') {
    if (!/^rediss?:\/\//.test(redis)) {
      throw new ConfigError(
        'redis',
        `must be a redis:// or rediss:// URL or an ioredis client, got ${JSON.stringify(redis)}`,
      );
    }
    return new Redis(redis, {
      // A command while disconnected fails at once instead of waiting in an unbounded queue.
      enableOfflineQueue: false,
      // A command in flight when the connection drops fails, instead of being sent again on reconnect.
      maxRetriesPerRequest: 0,
      // Bounds how long a command Redis never answers (a hung server) is held.
      commandTimeout: 1_000,
      connectTimeout: 1_000,
      // How long close() waits for a socket to a hung Redis before destroying it.
      disconnectTimeout: 500,
      // Reconnect for ever, at most a second apart: the probe finds Redis when it is back.
      retryStrategy: (times: number) => Math.min(50 * times, 1_000),
    });
  }
  if (typeof redis !== 'object' || redis === null || typeof (redis as Partial<Redis>).ping !== 'function') {
    throw new ConfigError('redis', 'must be a redis:// URL or an ioredis client');
  }
  return redis;
}
