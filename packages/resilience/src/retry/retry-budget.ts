import { ConfigError, systemClock, type Clock } from '@trellis/core';

export interface RetryBudgetOptions {
  /** How long a deposit or withdrawal counts; default 10 000 ms. */
  readonly ttlMs?: number;
  /** Retries allowed per second however few calls are made (the floor); default 10. */
  readonly minRetriesPerSecond?: number;
  /** Retries allowed as a share of calls over the last `ttlMs`, from 0 to 1; default 0.2 (a fifth). */
  readonly retryShare?: number;
  readonly clock?: Clock;
}

/**
 * Checks the budget fields given, with the constructor's ranges: for options arriving as data.
 * @param prefix put before each field's name in the error ("retry.budget" makes
 *   "retry.budget.retryShare"); default none, as the constructor names them.
 * @throws ConfigError naming the field.
 * @example
 * checkRetryBudgetOptions({ retryShare: 0.1 }, 'retry.budget');
 */
export function checkRetryBudgetOptions(
  options: Pick<RetryBudgetOptions, 'ttlMs' | 'minRetriesPerSecond' | 'retryShare'>,
  prefix?: string,
): void {
  const field = (name: string): string => (prefix === undefined ? name : `${prefix}.${name}`);
  const { ttlMs, minRetriesPerSecond, retryShare } = options;
  if (ttlMs !== undefined && !(Number.isFinite(ttlMs) && ttlMs >= 1_000)) {
    throw new ConfigError(field('ttlMs'), `must be a number of milliseconds >= 1000, got ${ttlMs}`);
  }
  if (minRetriesPerSecond !== undefined && !(Number.isFinite(minRetriesPerSecond) && minRetriesPerSecond >= 0)) {
    throw new ConfigError(field('minRetriesPerSecond'), `must be a number >= 0, got ${minRetriesPerSecond}`);
  }
  if (retryShare !== undefined && !(Number.isFinite(retryShare) && retryShare >= 0 && retryShare <= 1)) {
    throw new ConfigError(field('retryShare'), `must be a share from 0 to 1, got ${retryShare}`);
  }
}

// Integer units, as Finagle's TokenRetryBudget: a call deposits `percent × unit`, a retry
// withdraws one unit; integers keep the windowed sums exact.
const unit = 1_000;
const slices = 10;

/**
 * Finagle's retry budget: retries may be at most `retryShare` of the calls made over the
 * last `ttlMs`, plus a floor of `minRetriesPerSecond`, so that when a dependency fails, retries
 * add at most that share of load instead of multiplying it (3 attempts each would triple it).
 * Every call deposits, every retry withdraws; both count for `ttlMs` and then expire, in ten
 * time slices, so the memory is fixed whatever the rate.
 *
 * Share one budget across the retry filters of all clients of a service, or all services.
 *
 * @throws ConfigError from the constructor for an option out of range, naming it.
 * @example
 * const budget = new RetryBudget({ retryShare: 0.1 });
 * new ServiceClient({ service: 'users', discovery, retry: { budget } });
 */
export class RetryBudget {
  readonly ttlMs: number;
  readonly minRetriesPerSecond: number;
  readonly retryShare: number;
  readonly #clock: Clock;
  readonly #deposit: number;
  readonly #reserve: number;
  readonly #sliceMs: number;
  readonly #slices = new Float64Array(slices);
  #index = 0;
  #sliceStart: number;
  #sum = 0;

  constructor(options: RetryBudgetOptions = {}) {
    const ttlMs = options.ttlMs ?? 10_000;
    const minRetriesPerSecond = options.minRetriesPerSecond ?? 10;
    const retryShare = options.retryShare ?? 0.2;
    checkRetryBudgetOptions({ ttlMs, minRetriesPerSecond, retryShare });
    this.ttlMs = ttlMs;
    this.minRetriesPerSecond = minRetriesPerSecond;
    this.retryShare = retryShare;
    this.#clock = options.clock ?? systemClock;
    this.#deposit = Math.round(retryShare * unit);
    this.#reserve = Math.round(minRetriesPerSecond * (ttlMs / 1_000) * unit);
    this.#sliceMs = ttlMs / slices;
    this.#sliceStart = this.#clock.now();
  }

  /** Counts one call (its first attempt). */
  deposit(): void {
    this.#add(this.#deposit);
  }

  /** Takes one retry from the budget: false, and nothing taken, when it is spent. */
  tryWithdraw(): boolean {
    this.#expire();
    if (this.#sum + this.#reserve - unit < 0) return false;
    this.#add(-unit);
    return true;
  }

  /** Retries the budget would allow now. */
  get balance(): number {
    this.#expire();
    return Math.floor((this.#sum + this.#reserve) / unit);
  }

  #add(amount: number): void {
    this.#expire();
    this.#slices[this.#index] = (this.#slices[this.#index] ?? 0) + amount;
    this.#sum += amount;
  }

  #expire(): void {
    const now = this.#clock.now();
    const steps = Math.floor((now - this.#sliceStart) / this.#sliceMs);
    if (steps <= 0) return;
    // Clear the slices that fell out of the window: at most all of them.
    for (let i = 1; i <= Math.min(steps, slices); i++) {
      const index = (this.#index + i) % slices;
      this.#sum -= this.#slices[index] ?? 0;
      this.#slices[index] = 0;
    }
    this.#index = (this.#index + steps) % slices;
    this.#sliceStart += steps * this.#sliceMs;
  }
}
