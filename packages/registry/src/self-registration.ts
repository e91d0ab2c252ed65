import {
  ConfigError,
  Emitter,
  RegistryRejectedError,
  RegistryUnavailableError,
  systemClock,
  type Clock,
  type Closeable,
  type Timer,
} from '@trellis/core';
import type { Registration, Registry } from './registry.js';

export interface SelfRegistrationOptions {
  readonly clock?: Clock;
  /** Milliseconds between heartbeats; default a third of the TTL, so two may be lost. */
  readonly heartbeatMs?: number;
  /**
   * When the registry cannot be reached at start() (RegistryUnavailableError; a refusal still
   * throws), resolve anyway and keep trying to register in the background until it works
   * ({@link SelfRegistration.onRegistered}). Default false: start() throws.
   */
  readonly startWhenUnreachable?: boolean;
  /**
   * Waits between those attempts: the n-th failure waits between half and all of
   * `min(backoffMaxMs, backoffBaseMs * 2^(n-1))`; defaults 500 ms and the heartbeat interval,
   * so that the registry is asked no more often than a heartbeat once it has been down a while.
   */
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /** Source of the backoff jitter, in [0, 1); default Math.random. */
  readonly random?: () => number;
}

/** What a {@link SelfRegistration} knows of its instance's registration, from `describe()`. */
export interface RegistrationStatus {
  /**
   * `new` before start(), `running` from start() on (heartbeating, or trying to register when
   * the registry could not be reached at start), `closed` once deregistered (or stopped).
   */
  readonly state: 'new' | 'running' | 'closed';
  /**
   * True while the registry holds the instance as far as this process knows: from a registration
   * it accepted until close(), or until a heartbeat finds that the registry forgot it.
   */
  readonly registered: boolean;
  readonly instanceId: string;
  readonly ttlMs: number;
  readonly heartbeatMs: number;
  /** The clock's reading when the registry last accepted the instance (start, or a registration again). */
  readonly registeredAt: number | undefined;
  /** The clock's reading at the last heartbeat the registry accepted. */
  readonly lastHeartbeatAt: number | undefined;
  /** Heartbeats or registrations that failed since the last one that succeeded; 0 while all is well. */
  readonly consecutiveFailures: number;
  /** All failures since start. */
  readonly failures: number;
  /** Times the registry had forgotten the instance and it was registered again. */
  readonly reregistrations: number;
  /** The message of the last failure, if any. */
  readonly lastError: string | undefined;
}

/**
 * Keeps one instance registered for as long as it runs: registers it, heartbeats well inside
 * its TTL, registers it again at once when the registry no longer knows it (it restarted empty,
 * or reaped the instance), and deregisters it on close.
 *
 * @example
 * const self = new SelfRegistration(registry, { instance, ttlMs: 10_000, deregisterAfterMs: 60_000 });
 * await self.start();
 * process.once('SIGTERM', () => void self.close());
 */
export class SelfRegistration implements Closeable {
  readonly #registry: Registry;
  readonly #registration: Registration;
  readonly #clock: Clock;
  readonly #heartbeatMs: number;
  readonly #startWhenUnreachable: boolean;
  readonly #backoffBaseMs: number;
  readonly #backoffMaxMs: number;
  readonly #random: () => number;
  readonly #registeredLate = new Emitter<void>();
  readonly #failed = new Emitter<unknown>();
  readonly #reregistered = new Emitter<void>();
  readonly #recovered = new Emitter<void>();
  #timer: Timer | undefined;
  #state: 'new' | 'running' | 'closed' = 'new';
  #registered = false;
  #registeredAt: number | undefined;
  #lastHeartbeatAt: number | undefined;
  #consecutiveFailures = 0;
  #failures = 0;
  #reregistrations = 0;
  #lastError: string | undefined;

  /** A heartbeat or re-registration failed; the next heartbeat tries again. */
  readonly onHeartbeatFailed = this.#failed.event;
  /** The registry had forgotten the instance and it was registered again. */
  readonly onReregistered = this.#reregistered.event;
  /** A heartbeat (or re-registration) went through after failing: once per outage, so that logs need not count. */
  readonly onHeartbeatRecovered = this.#recovered.event;
  /**
   * The registry accepted the instance after start() found it unreachable (with
   * `startWhenUnreachable`): once, so that logs need not count. Attempts that fail before are
   * not heartbeat failures; `describe()` counts them.
   */
  readonly onRegistered = this.#registeredLate.event;

  /** @throws ConfigError when the TTL, heartbeat interval or backoff is not a positive number. */
  constructor(registry: Registry, registration: Registration, options: SelfRegistrationOptions = {}) {
    if (!(registration.ttlMs > 0)) throw new ConfigError('ttlMs', `must be > 0, got ${registration.ttlMs}`);
    const heartbeatMs = options.heartbeatMs ?? registration.ttlMs / 3;
    if (!(heartbeatMs > 0 && heartbeatMs < registration.ttlMs)) {
      throw new ConfigError(
        'heartbeatMs',
        `must be > 0 and below the TTL (${registration.ttlMs} ms), got ${heartbeatMs}`,
      );
    }
    this.#registry = registry;
    this.#registration = registration;
    this.#clock = options.clock ?? systemClock;
    this.#heartbeatMs = heartbeatMs;
    this.#startWhenUnreachable = options.startWhenUnreachable ?? false;
    this.#backoffMaxMs = options.backoffMaxMs ?? heartbeatMs;
    this.#backoffBaseMs = options.backoffBaseMs ?? Math.min(500, this.#backoffMaxMs);
    if (!(this.#backoffBaseMs > 0 && Number.isFinite(this.#backoffBaseMs))) {
      throw new ConfigError('backoffBaseMs', `must be a positive number of milliseconds, got ${this.#backoffBaseMs}`);
    }
    if (!(this.#backoffMaxMs >= this.#backoffBaseMs && Number.isFinite(this.#backoffMaxMs))) {
      throw new ConfigError(
        'backoffMaxMs',
        `must be a number of milliseconds >= backoffBaseMs (${this.#backoffBaseMs}), got ${this.#backoffMaxMs}`,
      );
    }
    this.#random = options.random ?? Math.random;
  }

  /**
   * Registers the instance and starts heartbeating. With `startWhenUnreachable`, a registry that
   * cannot be reached does not fail it: it resolves with `describe().registered` false and keeps
   * trying, with backoff, until the registry accepts the instance.
   * @throws RegistryRejectedError when the registry refuses the registration, and
   *   RegistryUnavailableError when it cannot be reached (unless `startWhenUnreachable`).
   */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error(`SelfRegistration.start() called when ${this.#state}`);
    try {
      await this.#registry.register(this.#registration);
    } catch (error) {
      if (!(this.#startWhenUnreachable && RegistryUnavailableError.is(error))) throw error;
      this.#state = 'running';
      this.#count(error);
      this.#armRegistration();
      return;
    }
    this.#accepted();
    this.#state = 'running';
    this.#arm();
  }

  /**
   * Where the registration stands, read-only: state, when the registry last accepted the
   * instance and its heartbeat, and the failures since.
   *
   * @example
   * const self = new SelfRegistration(registry, { instance, ttlMs: 10_000, deregisterAfterMs: 60_000 });
   * const { consecutiveFailures, lastError } = self.describe();
   * if (consecutiveFailures > 2) log.warn(`the registry refuses heartbeats: ${lastError}`);
   */
  describe(): RegistrationStatus {
    return {
      state: this.#state,
      instanceId: this.#registration.instance.id,
      ttlMs: this.#registration.ttlMs,
      heartbeatMs: this.#heartbeatMs,
      registered: this.#registered,
      registeredAt: this.#registeredAt,
      lastHeartbeatAt: this.#lastHeartbeatAt,
      consecutiveFailures: this.#consecutiveFailures,
      failures: this.#failures,
      reregistrations: this.#reregistrations,
      lastError: this.#lastError,
    };
  }

  /** Stops heartbeating and deregisters; an instance the registry has already forgotten is fine. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    const wasRegistered = this.#state === 'running' && this.#registered;
    this.#state = 'closed';
    this.#registered = false;
    this.#timer?.cancel();
    if (!wasRegistered) return;
    try {
      await this.#registry.deregister(this.#registration.instance.id);
    } catch (error) {
      if (!(RegistryRejectedError.is(error) && error.status === 404)) throw error;
    }
  }

  #arm(): void {
    this.#timer = this.#clock.setTimer(this.#heartbeatMs, () => void this.#beat());
  }

  // After an unreachable registry at start: the next attempt, later with each failure.
  #armRegistration(): void {
    const failures = Math.min(this.#consecutiveFailures, 31);
    const ceiling = Math.min(this.#backoffMaxMs, this.#backoffBaseMs * 2 ** (failures - 1));
    // Half of it at least, so that attempts never come back to back.
    const delay = ceiling / 2 + (this.#random() * ceiling) / 2;
    this.#timer = this.#clock.setTimer(delay, () => void this.#registerLate());
  }

  async #registerLate(): Promise<void> {
    try {
      await this.#registry.register(this.#registration);
    } catch (error) {
      if (this.#state !== 'running') return;
      this.#count(error);
      this.#armRegistration();
      return;
    }
    if (this.#state !== 'running') {
      // Closed while the registration was on its way: take it back.
      await this.#registry.deregister(this.#registration.instance.id).catch(() => undefined);
      return;
    }
    this.#accepted();
    this.#consecutiveFailures = 0;
    this.#registeredLate.emit();
    this.#arm();
  }

  #accepted(): void {
    this.#registeredAt = this.#clock.now();
    this.#registered = true;
  }

  async #beat(): Promise<void> {
    try {
      await this.#registry.heartbeat(this.#registration.instance.id);
      this.#lastHeartbeatAt = this.#clock.now();
      this.#succeeded();
    } catch (error) {
      if (this.#state !== 'running') return;
      if (isUnknownInstance(error)) {
        this.#registered = false;
        await this.#reregister();
      } else {
        this.#fail(error);
      }
    }
    if (this.#state === 'running') this.#arm();
  }

  async #reregister(): Promise<void> {
    try {
      await this.#registry.register(this.#registration);
      this.#accepted();
      this.#reregistrations++;
      this.#succeeded();
      this.#reregistered.emit();
    } catch (error) {
      this.#fail(error);
    }
  }

  #fail(error: unknown): void {
    this.#count(error);
    this.#failed.emit(error);
  }

  #count(error: unknown): void {
    this.#consecutiveFailures++;
    this.#failures++;
    // Bounded: a registry's error page must not make the status a megabyte.
    this.#lastError = (error instanceof Error ? error.message : String(error)).slice(0, 500);
  }

  #succeeded(): void {
    const wasFailing = this.#consecutiveFailures > 0;
    this.#consecutiveFailures = 0;
    if (wasFailing) this.#recovered.emit();
  }
}

// Consul answers a heartbeat for a check it does not know with 404 "Unknown check ID"; versions
// before 1.7 answered 500 `CheckID "service:x" does not have associated TTL`.
function isUnknownInstance(error: unknown): boolean {
  return (
    RegistryRejectedError.is(error) &&
    (error.status === 404 || (error.status === 500 && error.message.includes('does not have associated TTL')))
  );
}
