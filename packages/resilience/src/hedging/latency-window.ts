import type { Clock } from '@trellis/core';

// Quarter-octave buckets from 1/16 ms to about 2^17 ms (131 s): about 19% apart, 85 in all.
const perOctave = 4;
const lowestLog = -4;
const buckets = (17 - lowestLog) * perOctave + 1;

/**
 * Recent latencies in fixed memory: a log-scale histogram for the current half window and
 * one for the previous, so that a percentile covers between half a window and a whole one.
 * Percentiles are read to within one bucket (about 19%).
 */
export class LatencyWindow {
  readonly #clock: Clock;
  readonly #halfMs: number;
  #current = new Float64Array(buckets);
  #previous = new Float64Array(buckets);
  #currentCount = 0;
  #previousCount = 0;
  #halfStart: number;

  constructor(clock: Clock, windowMs: number) {
    this.#clock = clock;
    this.#halfMs = windowMs / 2;
    this.#halfStart = clock.now();
  }

  record(ms: number): void {
    this.#roll();
    const log = Math.log2(Math.max(ms, 2 ** lowestLog));
    const index = Math.min(buckets - 1, Math.max(0, Math.ceil((log - lowestLog) * perOctave)));
    this.#current[index] = (this.#current[index] ?? 0) + 1;
    this.#currentCount++;
  }

  /** Latencies recorded in the window. */
  get count(): number {
    this.#roll();
    return this.#currentCount + this.#previousCount;
  }

  /** The `p` quantile (0 < p < 1) in ms, as the upper edge of its bucket; undefined when empty. */
  quantile(p: number): number | undefined {
    const total = this.count;
    if (total === 0) return undefined;
    const rank = Math.ceil(p * total);
    let seen = 0;
    for (let i = 0; i < buckets; i++) {
      seen += (this.#current[i] ?? 0) + (this.#previous[i] ?? 0);
      if (seen >= rank) return 2 ** (i / perOctave + lowestLog);
    }
    return 2 ** ((buckets - 1) / perOctave + lowestLog);
  }

  #roll(): void {
    const now = this.#clock.now();
    if (now - this.#halfStart < this.#halfMs) return;
    const halves = Math.floor((now - this.#halfStart) / this.#halfMs);
    if (halves === 1) {
      [this.#previous, this.#current] = [this.#current, this.#previous];
      this.#previousCount = this.#currentCount;
    } else {
      this.#previous.fill(0);
      this.#previousCount = 0;
    }
    this.#current.fill(0);
    this.#currentCount = 0;
    this.#halfStart += halves * this.#halfMs;
  }
}
