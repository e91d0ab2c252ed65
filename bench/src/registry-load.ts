import autocannon from 'autocannon';

/** What one autocannon run measured; latencies in milliseconds, over every answer. */
export interface LoadFigures {
  readonly requests: number;
  readonly seconds: number;
  /** Answers per second over the whole run. */
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Answers by status code, e.g. `{ 200: 51234 }`. */
  readonly statuses: Readonly<Record<string, number>>;
  /** Connection errors and timeouts. */
  readonly errors: number;
}

/** What {@link load} sends. */
export interface LoadOptions {
  readonly url: string;
  readonly method: 'GET' | 'PUT';
  /** The path of each request, from a counter of requests sent. */
  readonly path: (n: number) => string;
  readonly connections: number;
  readonly seconds: number;
}

/**
 * Runs autocannon for a fixed time against 127.0.0.1 and measures every answer, whatever its
 * status (autocannon's own histogram keeps only 2xx, and to the millisecond).
 * @throws Error when autocannon cannot start.
 * @example
 * const figures = await load({ url, method: 'PUT', path: (n) => `/v1/agent/check/pass/${ids[n % ids.length]}`,
 *   connections: 50, seconds: 10 });
 */
export async function load(options: LoadOptions): Promise<LoadFigures> {
  let sent = 0;
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        duration: options.seconds,
        requests: [
          {
            method: options.method,
            setupRequest: (request) => ({ ...request, path: options.path(sent++) }),
          },
        ],
      },
      (error: Error | null, done: autocannon.Result) => (error === null ? resolve(done) : reject(error)),
    );
    instance.on('response', (_client, status, _bytes, responseTime) => {
      latencies.push(responseTime);
      statuses[status] = (statuses[status] ?? 0) + 1;
    });
  });
  const sorted = Float64Array.from(latencies).sort();
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return {
    requests: sorted.length,
    seconds: result.duration,
    rps: sorted.length / result.duration,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    statuses,
    errors: result.errors,
  };
}
