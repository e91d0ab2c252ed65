import type http from 'node:http';
import type { RegistryChild } from './registry-child.js';
import { send } from './registry-http.js';

/** How one round of watchers saw one registration, in milliseconds from its send. */
export interface WatcherRound {
  readonly watchers: number;
  /** The registration's own round trip. */
  readonly registerMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Watchers answered before the registration was sent (woken by something else); should be 0. */
  readonly early: number;
  /** Watchers whose answer was not a 200 with a larger X-Consul-Index. */
  readonly wrong: number;
}

/** What {@link measureWatchers} needs. */
export interface WatcherOptions {
  readonly child: RegistryChild;
  /** A keep-alive agent with at least `watchers + 1` sockets. */
  readonly agent: http.Agent;
  /** The service the watchers read. */
  readonly service: string;
  readonly watchers: number;
  /** Builds the registration body of the new instance `id`. */
  readonly register: (id: string) => string;
  /** Prefix of the new instances' ids; round `r` registers `${idPrefix}${r}`. */
  readonly idPrefix: string;
  /** Headers of the watchers' requests, e.g. Accept-Encoding: gzip as Go's Consul client sends. */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * One round: `watchers` blocking queries `GET /v1/health/service/<service>?index=<current>&wait=60s`
 * held at once (waited for until the server reports holding them all), then one new instance
 * of that service registered; each watcher's latency runs from the registration's send to the
 * end of its answer, so it includes the registration's own round trip.
 * @throws Error when the server does not hold every watcher within 20 s, or a request fails.
 * @example
 * const round = await measureWatchers({ child, agent, service: 'svc-000', watchers: 1000, ... }, 0);
 */
export async function measureWatchers(options: WatcherOptions, round: number): Promise<WatcherRound> {
  const { child, agent, service, watchers } = options;
  const healthUrl = `${child.url}/v1/health/service/${encodeURIComponent(service)}`;
  const current = await send(agent, 'GET', healthUrl, undefined, false);
  const index = Number(current.headers['x-consul-index']);
  if (current.status !== 200 || !Number.isSafeInteger(index)) {
    throw new Error(`GET ${healthUrl} answered ${current.status} with X-Consul-Index ${String(index)}`);
  }
  const id = `${options.idPrefix}${round}`;

  // Each watcher resolves with the time its answer ended; bodies are drained, not kept, so
  // that the parent spends as little as it can on 1,000 large answers arriving together.
  const answers = Array.from({ length: watchers }, () =>
    send(agent, 'GET', `${healthUrl}?index=${index}&wait=60s`, undefined, false, options.headers).then((answer) => ({
      at: performance.now(),
      ok: answer.status === 200 && Number(answer.headers['x-consul-index']) > index,
    })),
  );
  await child.waitForHeldQueries(watchers, 20_000);

  const sentAt = performance.now();
  const registered = await send(agent, 'PUT', `${child.url}/v1/agent/service/register`, options.register(id));
  const registerMs = performance.now() - sentAt;
  if (registered.status !== 200) throw new Error(`registering ${id} answered ${registered.status}`);
  const results = await Promise.all(answers);

  const latencies = Float64Array.from(results, (r) => r.at - sentAt).sort();
  const at = (q: number): number => latencies[Math.min(watchers - 1, Math.floor(q * watchers))] ?? Number.NaN;
  return {
    watchers,
    registerMs,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: latencies[watchers - 1] ?? Number.NaN,
    early: results.filter((r) => r.at < sentAt).length,
    wrong: results.filter((r) => !r.ok).length,
  };
}
