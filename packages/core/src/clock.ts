/** A scheduled callback; `cancel()` is safe to call after it fired or twice. */
export interface Timer {
  cancel(): void;
}

/**
 * Where time comes from. Everything in Trellis that waits, expires or measures takes a Clock,
 * so that tests drive time with a {@link ManualClock} instead of sleeping.
 */
export interface Clock {
  /** Milliseconds on a monotonic scale: only differences between two readings mean anything. */
  now(): number;
  /** Runs `callback` once after `delayMs`. Timers never keep a process alive on their own. */
  setTimer(delayMs: number, callback: () => void): Timer;
}

// setTimeout fires at once for delays beyond a signed 32-bit number of milliseconds (about
// 24.8 days); longer timers are chained through steps of at most this.
const maxTimeoutMs = 2 ** 31 - 1;

/** The real clock: `performance.now()` and unref'd `setTimeout`, for delays of any length. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(delayMs, callback) {
    const due = performance.now() + Math.max(0, delayMs);
    let handle: NodeJS.Timeout;
    // Node's timers count from the event loop's cached time, which lags `performance.now()` when
    // the loop is busy, so a timer may fire early by as much: check, and wait out the rest.
    const fire = (): void => {
      if (performance.now() < due) arm();
      else callback();
    };
    const arm = (): void => {
      const left = due - performance.now();
      handle = setTimeout(fire, Math.min(maxTimeoutMs, Math.max(0, left)));
      handle.unref();
    };
    arm();
    return { cancel: () => clearTimeout(handle) };
  },
};

interface ManualTimer extends Timer {
  readonly due: number;
  readonly seq: number;
  readonly callback: () => void;
  cancelled: boolean;
}

/**
 * A clock for tests: time stands still until {@link ManualClock.advance} moves it, and timers
 * fire in order of their due time (then of creation), each seeing `now()` equal to its due time.
 *
 * @example
 * const clock = new ManualClock();
 * clock.setTimer(100, () => fired.push(clock.now()));
 * clock.advance(150); // fired = [100], clock.now() = 150
 */
export class ManualClock implements Clock {
  /** Guards against a callback that re-arms a zero-delay timer forever. */
  static readonly maxTimersPerAdvance = 100_000;

  #now: number;
  #seq = 0;
  #timers: ManualTimer[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(delayMs: number, callback: () => void): Timer {
    const timer: ManualTimer = {
      due: this.#now + Math.max(0, delayMs),
      seq: this.#seq++,
      callback,
      cancelled: false,
      cancel: () => {
        timer.cancelled = true;
        this.#timers = this.#timers.filter((t) => t !== timer);
      },
    };
    // Keep the list sorted by (due, seq): insert after every timer due at or before this one.
    let i = this.#timers.length;
    while (i > 0 && (this.#timers[i - 1] as ManualTimer).due > timer.due) i--;
    this.#timers.splice(i, 0, timer);
    return timer;
  }

  /** Timers scheduled and not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way, including timers
   * that those callbacks schedule inside the window.
   * @throws RangeError if `ms` is negative, or if more than `maxTimersPerAdvance` timers fire.
   */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`ManualClock.advance: ms must be >= 0, got ${ms}`);
    const target = this.#now + ms;
    for (let fired = 0; ; fired++) {
      const next = this.#timers[0];
      if (next === undefined || next.due > target) break;
      if (fired >= ManualClock.maxTimersPerAdvance) {
        throw new RangeError(
          'ManualClock.advance: too many timers fired; is a callback re-arming itself with no delay?',
        );
      }
      this.#timers.shift();
      this.#now = next.due;
      next.callback();
    }
    this.#now = target;
  }

  /**
   * Like {@link advance}, but lets promise callbacks run after each timer, for code that awaits
   * between timers (a heartbeat that sends a request, then re-arms).
   */
  async advanceAsync(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`ManualClock.advanceAsync: ms must be >= 0, got ${ms}`);
    const target = this.#now + ms;
    for (let fired = 0; ; fired++) {
      await flushPromises();
      const next = this.#timers[0];
      if (next === undefined || next.due > target) break;
      if (fired >= ManualClock.maxTimersPerAdvance) {
        throw new RangeError(
          'ManualClock.advanceAsync: too many timers fired; is a callback re-arming itself with no delay?',
        );
      }
      this.#timers.shift();
      this.#now = next.due;
      next.callback();
    }
    this.#now = target;
    await flushPromises();
  }
}

/** Resolves once the promise jobs queued so far (and the ones they queue) have run. */
function flushPromises(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Waits `ms` on `clock`. Rejects with the signal's reason if `signal` aborts first.
 *
 * @example
 * await sleep(systemClock, 250, controller.signal);
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      timer.cancel();
      reject(signal?.reason);
    };
    const timer = clock.setTimer(ms, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
