import 'reflect-metadata';
import { Pool } from 'undici';
import { z } from 'zod';
import { MemoryRegistry } from '@trellis/registry';
import { Controller, Get, Param, TrellisApp } from '@trellis/app';
import { measureCalls, median, printTable, type RunFigures } from './measure.js';

@Controller('/users')
class UsersController {
  @Get('/:id')
  one(@Param('id') id: string): { id: string; name: string } {
    return { id, name: 'Ada' };
  }
}

@Controller('/users')
class CheckedUsersController {
  @Get('/:id')
  one(@Param('id', z.string().regex(/^\d+$/)) id: string): { id: string; name: string } {
    return { id, name: 'Ada' };
  }
}

/**
 * What serving a route as a decorated controller method costs over the same route written on
 * Fastify by hand (async, as users write it, and not async): GET /users/:id answering a small
 * object from its one path parameter. Every variant is a TrellisApp, so that each has the same
 * hooks (the SERVER span with no SDK, the inbound scope, the served-request metrics, the
 * draining check) and differs only in the route; the client is an undici Pool in the same
 * process, 32 requests in flight, the variants taking turns round by round.
 */
export async function controllerBench(): Promise<Record<string, number | string>> {
  const registry = new MemoryRegistry();
  const options = { registry, logLevel: 'silent', drainMs: 0 } as const;
  const raw = new TrellisApp({ service: 'raw', ...options });
  raw.http.get<{ Params: { id: string } }>('/users/:id', async (request) => ({ id: request.params.id, name: 'Ada' }));
  // The same route with a handler that is not async: Fastify sends its value without awaiting it.
  const rawSync = new TrellisApp({ service: 'raw-sync', ...options });
  rawSync.http.get<{ Params: { id: string } }>('/users/:id', (request) => ({ id: request.params.id, name: 'Ada' }));
  const decorated = new TrellisApp({ service: 'decorated', ...options, controllers: [UsersController] });
  const checked = new TrellisApp({ service: 'checked', ...options, controllers: [CheckedUsersController] });
  const apps = { raw, rawSync, decorated, checked };
  const pools: Record<string, Pool> = {};
  for (const [name, app] of Object.entries(apps)) pools[name] = new Pool((await app.start()).url, { connections: 32 });

  const call = (pool: Pool) => async (): Promise<unknown> => {
    const response = await pool.request({ method: 'GET', path: '/users/42' });
    if (response.statusCode !== 200) throw new Error(`unexpected status ${response.statusCode}`);
    return response.body.json();
  };
  const calls = 25_000;
  const concurrency = 32;
  const rounds = 8;
  const variants = Object.keys(apps);
  const runs: Record<string, RunFigures[]> = Object.fromEntries(variants.map((v) => [v, []]));
  // CPU time of the process (client and server) per request: steadier than requests per second
  // on a machine that other work shares, since time the process waits for a core is not in it.
  const cpu: Record<string, number[]> = Object.fromEntries(variants.map((v) => [v, []]));
  for (const variant of variants) await measureCalls(call(pools[variant] as Pool), 5_000, concurrency); // warm-up
  for (let round = 0; round < rounds; round++) {
    // A different variant goes first each round, so that none always runs on a warmer or cooler machine.
    const order = variants.map((_, i) => variants[(i + round) % variants.length] as string);
    for (const variant of order) {
      const before = process.cpuUsage();
      runs[variant]?.push(await measureCalls(call(pools[variant] as Pool), calls, concurrency));
      const used = process.cpuUsage(before);
      cpu[variant]?.push((used.user + used.system) / calls);
    }
  }
  await Promise.all(Object.values(pools).map((pool) => pool.close()));
  await Promise.all(Object.values(apps).map((app) => app.close()));
  await registry.close();

  const pick = (variant: string, field: 'rps' | 'p50Ms' | 'p99Ms'): number =>
    median((runs[variant] ?? []).map((r) => r[field]));
  const cpuUs = (variant: string): number => median(cpu[variant] ?? []);
  const row = (label: string, variant: string): Array<string | number> => [
    label,
    pick(variant, 'rps'),
    pick(variant, 'p50Ms'),
    pick(variant, 'p99Ms'),
    cpuUs(variant),
    (runs[variant] ?? []).map((r) => Math.round(r.rps)).join(' '),
  ];
  console.log(
    `GET /users/:id on a TrellisApp, ${calls} requests x ${rounds} rounds, ${concurrency} in flight, 127.0.0.1 (medians):\n`,
  );
  printTable(
    ['variant', 'rps', 'p50_ms', 'p99_ms', 'cpu_us_per_request', 'rps by round'],
    [
      row('app.http.get, async handler (baseline)', 'raw'),
      row('app.http.get, plain handler', 'rawSync'),
      row('@Controller method, @Param', 'decorated'),
      row('@Controller method, @Param with a zod schema', 'checked'),
    ],
  );
  const ratio = pick('decorated', 'rps') / pick('raw', 'rps');
  const checkedRatio = pick('checked', 'rps') / pick('raw', 'rps');
  console.log(`\ncontroller_ratio_vs_fastify (decorated / by hand): ${ratio.toFixed(3)}`);
  console.log(`checked_ratio_vs_fastify (decorated with a schema / by hand): ${checkedRatio.toFixed(3)}`);
  const syncRatio = pick('decorated', 'rps') / pick('rawSync', 'rps');
  console.log(`controller_ratio_vs_fastify_plain (decorated / by hand, not async): ${syncRatio.toFixed(3)}`);
  const cpuRatio = cpuUs('raw') / cpuUs('decorated');
  console.log(`controller_cpu_ratio_vs_fastify (CPU per request, by hand / decorated): ${cpuRatio.toFixed(3)}`);
  return {
    controller_ratio_vs_fastify: Number(ratio.toFixed(3)),
    controller_ratio_vs_fastify_plain: Number(syncRatio.toFixed(3)),
    checked_ratio_vs_fastify: Number(checkedRatio.toFixed(3)),
    controller_cpu_ratio_vs_fastify: Number(cpuRatio.toFixed(3)),
    fastify_cpu_us_per_request: Number(cpuUs('raw').toFixed(1)),
    controller_cpu_us_per_request: Number(cpuUs('decorated').toFixed(1)),
    checked_cpu_us_per_request: Number(cpuUs('checked').toFixed(1)),
    fastify_rps: Math.round(pick('raw', 'rps')),
    fastify_plain_rps: Math.round(pick('rawSync', 'rps')),
    controller_rps: Math.round(pick('decorated', 'rps')),
    checked_controller_rps: Math.round(pick('checked', 'rps')),
    controller_p99_ms: Number(pick('decorated', 'p99Ms').toFixed(2)),
    fastify_p99_ms: Number(pick('raw', 'p99Ms').toFixed(2)),
  };
}
