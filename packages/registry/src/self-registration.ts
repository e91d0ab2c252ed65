import {
  ConfigError,
  Emitter,
  RegistryRejectedError,
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
}

/** What a {@link SelfRegistration} knows of its instance's registration, from `describe()`. */
export interface RegistrationStatus {
  /** `new` before start(), `running` while it heartbeats, `closed` once deregistered (or stopped). */
  readonly state: 'new' | 'running' | 'closed';
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
  readonly #failed = new Emitter<unknown>();
  readonly #reregistered = new Emitter<void>();
  readonly #recovered = new Emitter<void>();
  #timer: Timer | undefined;
  #state: 'new' | 'running' | 'closed' = 'new';
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

  /** @throws ConfigError when the TTL or heartbeat interval is not a positive number. */
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
  }

  /**
   * Registers the instance and starts heartbeating.
   * @throws RegistryUnavailableError or RegistryRejectedError when the first registration fails.
   */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error(`SelfRegistration.start() called when ${this.#state}`);
    await this.#registry.register(this.#registration);
    this.#registeredAt = this.#clock.now();
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
    const wasRunning = this.#state === 'running';
    this.#state = 'closed';
    this.#timer?.cancel();
    if (!wasRunning) return;
    try {
      await this.#registry.deregister(this.#registration.instance.id);
    } catch (error) {
      if (!(RegistryRejectedError.is(error) && error.status === 404)) throw error;
    }
  }

  #arm(): void {
    this.#timer = this.#clock.setTimer(this.#heartbeatMs, () => void this.#beat());
  }

  async #beat(): Promise<void> {
    try {
      await this.#registry.heartbeat(this.#registration.instance.id);
      this.#lastHeartbeatAt = this.#clock.now();
      this.#succeeded();
    } catch (error) {
      if (this.#state !== 'running') return;
      if (isUnknownInstance(error)) {
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
      this.#registeredAt = this.#clock.now();
      this.#reregistrations++;
      this.#succeeded();
      this.#reregistered.emit();
    } catch (error) {
      this.#fail(error);
    }
  }

  #fail(error: unknown): void {
    this.#consecutiveFailures++;
    this.#failures++;
    // Bounded: a registry's error page must not make the status a megabyte.
    this.#lastError = (error instanceof Error ? error.message : String(error)).slice(0, 500);
    this.#failed.emit(error);
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
