import http from 'node:http';
import { startRegistryChild } from './registry-child.js';
import { send } from './registry-http.js';

/** What the server's memory did under the `?tag=t&tag=t&...` attack. */
export interface TagAttackFigures {
  /** Bytes of the attacked answer. */
  readonly answerBytes: number;
  readonly requests: number;
  readonly seconds: number;
  /** Resident memory just after the attack less before it (taken after a full collection), MB. */
  readonly rssGrowthMb: number;
  /** Heap used after a full collection, after the attack less before it, MB. */
  readonly heapGrowthMb: number;
  /** The answer cache's bytes after the attack, MB. */
  readonly answerCacheMb: number;
}

const instances = 400;
const inFlight = 8;

/**
 * The answer-cache attack of issue 10 against a fresh server process: a service of 400
 * instances with 2.5 kB of metadata each (a 1.1 MB health answer), then `requests` reads of it,
 * each with one more `?tag=t` than the last (all the same full answer, each once a new cache
 * key), 8 in flight. Before the answer cache was bounded by bytes and keyed on the tags once
 * each, 400 of them added 447 MB of resident memory.
 * @throws Error when the server process fails to start, or a request is refused.
 * @example
 * const attack = await measureTagAttack(400);
 * console.log(attack.rssGrowthMb);
 */
export async function measureTagAttack(requests: number): Promise<TagAttackFigures> {
  const child = await startRegistryChild();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  try {
    const meta = Object.fromEntries(Array.from({ length: 5 }, (_, k) => [`m${k}`, 'x'.repeat(500)]));
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < instances) {
          const i = next++;
          const body = JSON.stringify({ Name: 'big', ID: `big-${i}`, Port: 1000 + i, Tags: ['t'], Meta: meta });
          const answer = await send(agent, 'PUT', `${child.url}/v1/agent/service/register`, body);
          if (answer.status !== 200) throw new Error(`registering big-${i} answered ${answer.status}`);
        }
      }),
    );
    const full = await send(agent, 'GET', `${child.url}/v1/health/service/big`);
    const before = await child.stats(true);

    const started = performance.now();
    let sent = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (sent < requests) {
          const tags = 'tag=t&'.repeat(++sent);
          const answer = await send(agent, 'GET', `${child.url}/v1/health/service/big?${tags}`, undefined, false);
          if (answer.status !== 200) throw new Error(`the attack's read ${sent} answered ${answer.status}`);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1_000;
    // RSS as the attack left it (what the issue measured), the heap once collected.
    const after = await child.stats(false);
    const collected = await child.stats(true);
    const mb = (bytes: number): number => bytes / 2 ** 20;
    return {
      answerBytes: Buffer.byteLength(full.body),
      requests,
      seconds,
      rssGrowthMb: mb(after.rssBytes - before.rssBytes),
      heapGrowthMb: mb(collected.heapUsedBytes - before.heapUsedBytes),
      answerCacheMb: mb(collected.answerCacheBytes),
    };
  } finally {
    agent.destroy();
    await child.close();
  }
}
