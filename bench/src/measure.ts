/** Latency figures of one run, in milliseconds. */
export interface RunFigures {
  readonly calls: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
}

/**
 * Runs `call` `total` times with `concurrency` calls in flight, and measures each call's latency.
 * Every loop is bounded by `total`.
 */
export async function measureCalls(
  call: () => Promise<unknown>,
  total: number,
  concurrency: number,
): Promise<RunFigures> {
  const latencies = new Float64Array(total);
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      const t0 = performance.now();
      await call();
      latencies[i] = performance.now() - t0;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1_000;
  const sorted = latencies.sort();
  const at = (q: number): number => sorted[Math.min(total - 1, Math.floor(q * total))] ?? Number.NaN;
  return {
    calls: total,
    seconds,
    rps: total / seconds,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    meanMs: sorted.reduce((a, b) => a + b, 0) / total,
  };
}

/** Nanoseconds per call of a tight loop of `iterations` awaited calls. */
export async function nsPerCall(call: () => Promise<unknown>, iterations: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await call();
  return Number(process.hrtime.bigint() - t0) / iterations;
}

/** The median of a few numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** Prints rows as an aligned table. */
export function printTable(header: readonly string[], rows: ReadonlyArray<readonly (string | number)[]>): void {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? format(c) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  for (const row of cells) console.log(row.map((c, i) => String(c).padStart(widths[i] ?? 0)).join('  '));
}

function format(n: number): string {
  if (Number.isInteger(n)) return String(n);
  return Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 1 ? n.toFixed(2) : n.toFixed(3);
}
