import type { Clock, Timer } from '@trellis/core';
import { HttpCheckRunner, type HttpCheckHandle, type HttpCheckResult } from '../checks/http-check-runner.js';
import { ScriptCheckRunner, type ScriptCheckHandle } from '../checks/script-check-runner.js';
import type { HttpCheckSpec, ScriptCheckSpec } from './service-definition.js';

/** What {@link CheckScheduler} calls back, with the id of the check whose time came. */
export interface CheckSchedulerEvents {
  /** A TTL check's TTL ran out with no update. */
  readonly ttlExpired: (checkId: string) => void;
  /** A check stayed critical until its DeregisterCriticalServiceAfter. */
  readonly reapDue: (checkId: string) => void;
  /** One run of an HTTP check or a script check ended. */
  readonly runResult: (checkId: string, result: HttpCheckResult) => void;
}

interface Schedule {
  ttl: Timer | undefined;
  reap: Timer | undefined;
  http: HttpCheckHandle | undefined;
  script: ScriptCheckHandle | undefined;
}

/**
 * The timers of the catalog's checks, by check id: TTL expiry, reaping after
 * DeregisterCriticalServiceAfter, and HTTP and script check runs. It decides nothing about state: the
 * catalog arms and cancels, and acts on the callbacks. One entry per live check, dropped with it.
 *
 * @example
 * const scheduler = new CheckScheduler(clock, { ttlExpired, reapDue, runResult });
 * scheduler.armTtl('service:web', 10_000);
 * scheduler.drop('service:web');
 */
export class CheckScheduler {
  readonly #clock: Clock;
  readonly #events: CheckSchedulerEvents;
  readonly #http: HttpCheckRunner;
  readonly #script: ScriptCheckRunner;
  readonly #schedules = new Map<string, Schedule>();

  constructor(clock: Clock, events: CheckSchedulerEvents) {
    this.#clock = clock;
    this.#events = events;
    this.#http = new HttpCheckRunner({ clock });
    this.#script = new ScriptCheckRunner({ clock });
  }

  /** (Re)starts a check's TTL: it expires `ttlMs` from now; undefined cancels it. */
  armTtl(checkId: string, ttlMs: number | undefined): void {
    const schedule = this.#schedule(checkId);
    schedule.ttl?.cancel();
    schedule.ttl = undefined;
    if (ttlMs === undefined) return;
    schedule.ttl = this.#clock.setTimer(ttlMs, () => {
      schedule.ttl = undefined;
      this.#events.ttlExpired(checkId);
    });
  }

  /** Sets when a check's service is to be reaped (a clock time); undefined cancels it. */
  armReap(checkId: string, dueAt: number | undefined): void {
    const schedule = this.#schedule(checkId);
    schedule.reap?.cancel();
    schedule.reap = undefined;
    if (dueAt === undefined) return;
    schedule.reap = this.#clock.setTimer(dueAt - this.#clock.now(), () => {
      schedule.reap = undefined;
      this.#events.reapDue(checkId);
    });
  }

  /** (Re)starts running an HTTP check now, then at its interval; undefined stops it. */
  runHttp(checkId: string, spec: HttpCheckSpec | undefined): void {
    const schedule = this.#schedule(checkId);
    schedule.http?.stop();
    schedule.http = undefined;
    if (spec === undefined) return;
    schedule.http = this.#http.start(spec, (result) => this.#events.runResult(checkId, result));
  }

  /** (Re)starts running a script check now, then at its interval; undefined stops it. */
  runScript(checkId: string, spec: ScriptCheckSpec | undefined): void {
    const schedule = this.#schedule(checkId);
    schedule.script?.stop();
    schedule.script = undefined;
    if (spec === undefined) return;
    schedule.script = this.#script.start(spec, (result) => this.#events.runResult(checkId, result));
  }

  /** Whether an HTTP or script check is being run for that check. */
  runs(checkId: string): boolean {
    const schedule = this.#schedules.get(checkId);
    return schedule?.http !== undefined || schedule?.script !== undefined;
  }

  /** Cancels everything of one check and forgets it. */
  drop(checkId: string): void {
    const schedule = this.#schedules.get(checkId);
    if (schedule === undefined) return;
    schedule.ttl?.cancel();
    schedule.reap?.cancel();
    schedule.http?.stop();
    schedule.script?.stop();
    this.#schedules.delete(checkId);
  }

  /** Cancels every timer, stops every HTTP check and kills every script; resolves once the HTTP requests have wound down. */
  close(): Promise<void> {
    for (const checkId of [...this.#schedules.keys()]) this.drop(checkId);
    this.#script.close();
    return this.#http.close();
  }

  #schedule(checkId: string): Schedule {
    let schedule = this.#schedules.get(checkId);
    if (schedule === undefined)
      this.#schedules.set(
        checkId,
        (schedule = { ttl: undefined, reap: undefined, http: undefined, script: undefined }),
      );
    return schedule;
  }
}
