import http from 'node:http';
import net from 'node:net';
import type { RegistryChild } from './registry-child.js';
import { send } from './registry-http.js';

/** What a normal GET saw while one change woke thousands of blocking queries. */
export interface StormFigures {
  readonly watchers: number;
  /** From the change's send to the last watcher's first byte. */
  readonly stormMs: number;
  /** Normal GETs answered during the storm, one in flight at a time. */
  readonly gets: number;
  readonly getP50Ms: number;
  readonly getP99Ms: number;
  readonly getMaxMs: number;
  /** The longest the server's event loop was held during the storm (its own measure). */
  readonly loopDelayMaxMs: number;
  /** Watchers whose answer was not a 200. */
  readonly wrong: number;
}

/** What {@link measureStorm} needs. */
export interface StormOptions {
  readonly child: RegistryChild;
  /** The service the watchers read; a change registers `${service}-storm` in it. */
  readonly service: string;
  readonly watchers: number;
  /** Builds the registration body of the new instance `id`. */
  readonly register: (id: string) => string;
}

/**
 * A wake storm: `watchers` blocking queries of one service held at once (half of them
 * accepting gzip, as Go's Consul client does), then one change of that service, while a normal
 * `GET /v1/status/leader` is sent again and again, one at a time, until every watcher has its
 * answer. The watchers are plain sockets that only note their first byte, so that the bench's
 * own process stays light while 5,000 answers arrive.
 * @throws Error when the server does not hold every watcher within 60 s, or a request fails.
 * @example
 * const storm = await measureStorm({ child, service: 'svc-000', watchers: 5_000, register });
 * console.log(storm.getP99Ms, storm.getMaxMs);
 */
export async function measureStorm(options: StormOptions): Promise<StormFigures> {
  const { child, service, watchers } = options;
  const path = `/v1/health/service/${encodeURIComponent(service)}`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  const sockets: net.Socket[] = [];
  try {
    const current = await send(agent, 'GET', `${child.url}${path}`, undefined, false);
    const index = Number(current.headers['x-consul-index']);
    if (current.status !== 200 || !Number.isSafeInteger(index)) {
      throw new Error(`GET ${path} answered ${current.status} with X-Consul-Index ${String(index)}`);
    }
    const answers = Array.from({ length: watchers }, (_, i) => {
      const socket = net.connect(child.port, '127.0.0.1');
      sockets.push(socket);
      socket.setEncoding('latin1');
      socket.write(
        `GET ${path}?index=${index}&wait=60s HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
          `${i % 2 === 0 ? '' : 'Accept-Encoding: gzip\r\n'}\r\n`,
      );
      return new Promise<{ at: number; ok: boolean }>((resolve, reject) => {
        socket.once('error', reject);
        socket.once('data', (chunk: string) => {
          resolve({ at: performance.now(), ok: chunk.startsWith('HTTP/1.1 200 ') });
          socket.resume(); // drained from here on, never kept
        });
      });
    });
    await child.waitForHeldQueries(watchers, 60_000);
    await send(agent, 'GET', `${child.url}/v1/status/leader`); // the GET's socket is open and warm
    await child.stats(); // the server's loop-delay measure starts here

    const sentAt = performance.now();
    let stormOver = false;
    const all = Promise.all(answers).finally(() => (stormOver = true));
    all.catch(() => undefined); // awaited below, after the GETs
    const change = send(agent, 'PUT', `${child.url}/v1/agent/service/register`, options.register(`${service}-storm`));
    const latencies: number[] = [];
    // Bounded by the storm, which ends when every watcher has answered (or one failed), and by a minute.
    while (!stormOver && performance.now() - sentAt < 60_000) {
      const t0 = performance.now();
      const answer = await send(agent, 'GET', `${child.url}/v1/status/leader`);
      if (answer.status !== 200) throw new Error(`GET /v1/status/leader answered ${answer.status} during the storm`);
      latencies.push(performance.now() - t0);
    }
    const results = await all;
    const stormMs = Math.max(...results.map((r) => r.at)) - sentAt;
    const loopDelayMaxMs = (await child.stats()).loopDelayMaxMs;
    if ((await change).status !== 200) throw new Error('the change of the storm was refused');

    const sorted = latencies.sort((a, b) => a - b);
    const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
    return {
      watchers,
      stormMs,
      gets: sorted.length,
      getP50Ms: at(0.5),
      getP99Ms: at(0.99),
      getMaxMs: sorted[sorted.length - 1] ?? Number.NaN,
      loopDelayMaxMs,
      wrong: results.filter((r) => !r.ok).length,
    };
  } finally {
    for (const socket of sockets) socket.destroy();
    agent.destroy();
  }
}
