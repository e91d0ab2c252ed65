/**
 * Counts calls and failures over the last `windowMs`, in `buckets` slices of equal length.
 * Memory is two small arrays whatever the call rate, and each call costs O(1): the sums are
 * kept as calls come in, and stale slices are cleared lazily when time has moved on.
 * (opossum's own window keeps one latency per call and re-adds every slice on each failure.)
 */
export class SlidingWindow {
  readonly #calls: Uint32Array;
  readonly #failures: Uint32Array;
  readonly #bucketMs: number;
  #epoch = Number.NEGATIVE_INFINITY;
  #totalCalls = 0;
  #totalFailures = 0;

  constructor(windowMs: number, buckets: number) {
    this.#calls = new Uint32Array(buckets);
    this.#failures = new Uint32Array(buckets);
    this.#bucketMs = windowMs / buckets;
  }

  /** Calls counted in the window, as of the last {@link add} or {@link roll}. */
  get calls(): number {
    return this.#totalCalls;
  }

  /** Failed calls counted in the window, as of the last {@link add} or {@link roll}. */
  get failures(): number {
    return this.#totalFailures;
  }

  /** Counts one call that ended at `now`. */
  add(now: number, failed: boolean): void {
    this.roll(now);
    const i = slot(this.#epoch, this.#calls.length);
    this.#calls[i] = (this.#calls[i] as number) + 1;
    this.#totalCalls++;
    if (failed) {
      this.#failures[i] = (this.#failures[i] as number) + 1;
      this.#totalFailures++;
    }
  }

  /**
   * Counts `calls` calls, `failures` of them failed, as if they had all ended at `now`: how a
   * restored breaker takes back the counts it saved. They leave the window together.
   */
  restore(now: number, calls: number, failures: number): void {
    this.roll(now);
    const i = slot(this.#epoch, this.#calls.length);
    this.#calls[i] = (this.#calls[i] as number) + calls;
    this.#failures[i] = (this.#failures[i] as number) + failures;
    this.#totalCalls += calls;
    this.#totalFailures += failures;
  }

  /** Drops the slices that have left the window by `now`. */
  roll(now: number): void {
    const epoch = Math.floor(now / this.#bucketMs);
    const gap = epoch - this.#epoch;
    if (gap <= 0) return; // same slice, or a clock that stepped back: count in the current one
    const n = this.#calls.length;
    if (gap >= n) {
      this.reset();
    } else {
      for (let k = 1; k <= gap; k++) {
        const i = slot(this.#epoch + k, n);
        this.#totalCalls -= this.#calls[i] as number;
        this.#totalFailures -= this.#failures[i] as number;
        this.#calls[i] = 0;
        this.#failures[i] = 0;
      }
    }
    this.#epoch = epoch;
  }

  /** Forgets every call. */
  reset(): void {
    this.#calls.fill(0);
    this.#failures.fill(0);
    this.#totalCalls = 0;
    this.#totalFailures = 0;
  }
}

// The ring index of a slice; also right for a clock that starts below zero.
function slot(epoch: number, n: number): number {
  const i = epoch % n;
  return i < 0 ? i + n : i;
}
