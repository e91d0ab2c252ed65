import { fork } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import axios from 'axios';
import { Pool } from 'undici';
import { CallContext, type Reply, type ServiceInstance } from '@trellis/core';
import { ServiceClient } from '@trellis/client';
import { TrellisMetrics } from '@trellis/metrics';
import { Discovery, MemoryRegistry } from '@trellis/registry';
import { instantTransport, setUpTracingBench } from './client-tracing.js';
import { measureCalls, median, nsPerCall, printTable, type RunFigures } from './measure.js';
import { nginxPath, startSidecars } from './sidecar.js';

/**
 * What a governed call costs over the bare HTTP client it sends with (axios, and undici's Pool),
 * to the same server process on 127.0.0.1; what the default stack costs with the network taken
 * out; and, as the answer to "why in process", what two nginx sidecars (a mesh's route) add to
 * the same request.
 */
export async function clientBench(): Promise<Record<string, number | string>> {
  const server = fork(fileURLToPath(new URL('./json-server.js', import.meta.url)));
  const port = await new Promise<number>((resolve, reject) => {
    server.once('message', (m) => resolve((m as { port: number }).port));
    server.once('exit', (code) => reject(new Error(`the benchmark server exited (${code}) before listening`)));
  });
  const instance: ServiceInstance = {
    id: 'users-1',
    service: 'users',
    address: '127.0.0.1',
    port,
    tags: [],
    meta: { weight: 1, labels: {} },
  };

  const registry = new MemoryRegistry();
  await registry.register({ instance, ttlMs: 600_000, deregisterAfterMs: 600_000 });
  const discovery = new Discovery(registry);
  const overAxios = new ServiceClient({ service: 'users', discovery });
  const overUndici = new ServiceClient({ service: 'users', discovery, transport: 'undici' });
  // The same client as overAxios, with the metrics a TrellisApp keeps subscribed to it.
  const metered = new ServiceClient({ service: 'users', discovery });
  const metrics = new TrellisMetrics({ processMetrics: false });
  metrics.subscribe(metered);
  // Measures tracing without an SDK, then starts one: only clients with the tracing stages see it.
  const tracing = await setUpTracingBench(discovery, instance);
  // The baselines are configured as the Trellis transports are: keep-alive, 64 connections, no
  // redirect following; each decodes the JSON body, as the transports do.
  const axiosAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const bareAxios = axios.create({ httpAgent: axiosAgent, baseURL: `http://127.0.0.1:${port}`, maxRedirects: 0 });
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 64 });
  const bareUndici = async (): Promise<unknown> => {
    const response = await pool.request({ path: '/users/1', method: 'GET' });
    return response.body.json();
  };

  const calls = 10_000;
  const concurrency = 16;
  const rounds = 5;
  const variants = {
    axios: () => bareAxios.get('/users/1'),
    governedAxios: () => overAxios.get('/users/1'),
    governedMetrics: () => metered.get('/users/1', { template: '/users/:id' }),
    governedTracing: tracing.traced,
    undici: bareUndici,
    governedUndici: () => overUndici.get('/users/1'),
  };
  type Variant = keyof typeof variants;
  const runs: Record<Variant, RunFigures[]> = {
    axios: [],
    governedAxios: [],
    governedMetrics: [],
    governedTracing: [],
    undici: [],
    governedUndici: [],
  };
  const names = Object.keys(variants) as Variant[];
  // Warm every path, then take the variants in a different order each round, so that drift
  // (the machine's other load) hits all alike.
  for (const name of names) await measureCalls(variants[name], 2_000, concurrency);
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(r + k) % names.length] as Variant;
      runs[name].push(await measureCalls(variants[name], calls, concurrency));
    }
  }
  const pick = (variant: RunFigures[], key: keyof RunFigures): number => median(variant.map((run) => run[key]));
  const row = (label: string, variant: RunFigures[]): Array<string | number> => [
    label,
    pick(variant, 'rps'),
    pick(variant, 'p50Ms'),
    pick(variant, 'p99Ms'),
    pick(variant, 'meanMs'),
  ];

  // The default stack alone: the same client over a transport that answers at once, but
  // listens for cancellation as undici and axios do; one telemetry listener attached.
  const instant = instantTransport(instance);
  const offline = new ServiceClient({ service: 'users', discovery, transport: instant });
  let events = 0;
  const listening = offline.onEvent(() => {
    events++;
  });
  const bareCall = (): Promise<Reply> =>
    instant.send({ service: 'users', method: 'GET', path: '/', headers: {} }, instance, new CallContext());
  await nsPerCall(bareCall, 100_000);
  await nsPerCall(() => offline.get('/users/1'), 100_000);
  const bareNs = await nsPerCall(bareCall, 500_000);
  const stackNs = await nsPerCall(() => offline.get('/users/1'), 500_000);

  console.log(
    `Governed calls vs their bare clients, ${calls} calls x ${rounds} rounds, ${concurrency} in flight, 127.0.0.1 (medians):\n`,
  );
  printTable(
    ['variant', 'rps', 'p50_ms', 'p99_ms', 'mean_ms'],
    [
      row('axios (baseline)', runs.axios),
      row('trellis client over axios', runs.governedAxios),
      row('trellis client over axios, metrics on', runs.governedMetrics),
      row('trellis client over axios, tracing on', runs.governedTracing),
      row('undici Pool (baseline)', runs.undici),
      row("trellis client over undici (transport: 'undici')", runs.governedUndici),
    ],
  );
  console.log(`\nThe default stack without the network (${500_000} sequential calls):\n`);
  printTable(
    ['variant', 'ns_per_call'],
    [
      ['bare async call (baseline)', bareNs],
      ['ServiceClient default stack, one telemetry listener', stackNs],
    ],
  );
  listening.dispose();
  console.log(`(the listener heard ${(events / 600_000).toFixed(1)} events per call)`);
  const rps = (variant: RunFigures[]): number => pick(variant, 'rps');
  const ratio = rps(runs.governedAxios) / rps(runs.axios);
  const undiciRatio = rps(runs.governedUndici) / rps(runs.undici);
  const undiciVsAxios = rps(runs.governedUndici) / rps(runs.axios);
  const metricsRatio = rps(runs.governedMetrics) / rps(runs.governedAxios);
  console.log(`\nratio_vs_axios (throughput, trellis over axios / axios): ${ratio.toFixed(3)}`);
  console.log(`undici_ratio_vs_undici (trellis over undici / undici Pool): ${undiciRatio.toFixed(3)}`);
  console.log(`undici_ratio_vs_axios (trellis over undici / axios): ${undiciVsAxios.toFixed(3)}`);
  console.log(`metrics_ratio (trellis over axios with metrics on / off): ${metricsRatio.toFixed(3)}`);
  const tracingFigures = await tracing.report(rps(runs.governedTracing), rps(runs.governedAxios));

  const sidecar = await sidecarFigures(port, [
    {
      label: 'undici',
      governed: () => overUndici.get('/users/1'),
      bare: (origin) => {
        const meshed = new Pool(origin, { connections: 64 });
        return {
          call: async () => (await meshed.request({ path: '/users/1', method: 'GET' })).body.json(),
          close: () => meshed.close(),
        };
      },
    },
    {
      label: 'axios',
      governed: () => overAxios.get('/users/1'),
      bare: (origin) => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
        const meshed = axios.create({ httpAgent: agent, baseURL: origin, maxRedirects: 0 });
        return { call: () => meshed.get('/users/1'), close: async () => agent.destroy() };
      },
    },
  ]);
  metrics.dispose();
  await tracing.close();
  await Promise.all([overAxios.close(), overUndici.close(), metered.close(), offline.close(), pool.close()]);
  axiosAgent.destroy();
  await discovery.close();
  await registry.close();
  server.disconnect();
  return {
    axios_rps: Math.round(rps(runs.axios)),
    trellis_rps: Math.round(rps(runs.governedAxios)),
    undici_rps: Math.round(rps(runs.undici)),
    trellis_undici_rps: Math.round(rps(runs.governedUndici)),
    ratio_vs_axios: Number(ratio.toFixed(3)),
    undici_ratio_vs_undici: Number(undiciRatio.toFixed(3)),
    undici_ratio_vs_axios: Number(undiciVsAxios.toFixed(3)),
    metrics_ratio: Number(metricsRatio.toFixed(3)),
    axios_p99_ms: Number(pick(runs.axios, 'p99Ms').toFixed(3)),
    trellis_p99_ms: Number(pick(runs.governedAxios, 'p99Ms').toFixed(3)),
    undici_p99_ms: Number(pick(runs.undici, 'p99Ms').toFixed(3)),
    trellis_undici_p99_ms: Number(pick(runs.governedUndici, 'p99Ms').toFixed(3)),
    stack_ns_per_call: Math.round(stackNs),
    bare_ns_per_call: Math.round(bareNs),
    ...tracingFigures,
    ...sidecar,
  };
}

/** One comparison: the governed call in process, and a bare client of the same library via the sidecars. */
interface SidecarPair {
  readonly label: string;
  readonly governed: () => Promise<unknown>;
  /** A bare client of the same HTTP library, sending to `origin`. */
  readonly bare: (origin: string) => { call: () => Promise<unknown>; close: () => Promise<void> };
}

/**
 * The same request, at the concurrency of the hand measurement (32), sent in process by the
 * governed client and through two nginx sidecars by a bare client of the same library (a meshed
 * app governs nothing itself); medians of 5 alternated rounds. The headline figures are
 * undici's: with axios the client's own CPU hides much of what the hops cost.
 */
async function sidecarFigures(port: number, pairs: readonly SidecarPair[]): Promise<Record<string, number | string>> {
  const sidecars = await startSidecars(port);
  if (sidecars === undefined) {
    const message = `${nginxPath} not found: install Debian's nginx (apt-get install nginx) to compare with two sidecars`;
    console.log(`\n${message}; skipped.`);
    return { sidecar: 'skipped: nginx not installed' };
  }
  const calls = 10_000;
  const concurrency = 32;
  const rounds = 5;
  const pick = (runs: RunFigures[], key: keyof RunFigures): number => median(runs.map((run) => run[key]));
  const figures: Record<string, number> = {};
  const rows: Array<Array<string | number>> = [];
  try {
    for (const pair of pairs) {
      const bare = pair.bare(`http://127.0.0.1:${sidecars.port}`);
      try {
        await measureCalls(bare.call, 2_000, concurrency);
        await measureCalls(pair.governed, 2_000, concurrency);
        const inProcess: RunFigures[] = [];
        const mesh: RunFigures[] = [];
        for (let r = 0; r < rounds; r++) {
          if (r % 2 === 0) inProcess.push(await measureCalls(pair.governed, calls, concurrency));
          mesh.push(await measureCalls(bare.call, calls, concurrency));
          if (r % 2 === 1) inProcess.push(await measureCalls(pair.governed, calls, concurrency));
        }
        const row = (label: string, runs: RunFigures[]): Array<string | number> => [
          label,
          pick(runs, 'rps'),
          pick(runs, 'p50Ms'),
          pick(runs, 'p99Ms'),
        ];
        rows.push(row(`trellis client over ${pair.label}, in process`, inProcess));
        rows.push(row(`bare ${pair.label} -> nginx -> nginx -> server`, mesh));
        const prefix = pair.label === 'undici' ? 'sidecar' : `sidecar_${pair.label}`;
        figures[`${prefix}_rps`] = Math.round(pick(mesh, 'rps'));
        figures[`${prefix}_in_process_rps`] = Math.round(pick(inProcess, 'rps'));
        figures[`${prefix}_added_p50_ms`] = Number((pick(mesh, 'p50Ms') - pick(inProcess, 'p50Ms')).toFixed(3));
        figures[`${prefix}_added_p99_ms`] = Number((pick(mesh, 'p99Ms') - pick(inProcess, 'p99Ms')).toFixed(3));
        figures[`${prefix}_ratio_rps`] = Number((pick(mesh, 'rps') / pick(inProcess, 'rps')).toFixed(3));
      } finally {
        await bare.close();
      }
    }
  } finally {
    await sidecars.close();
  }
  console.log(
    `\nIn process vs through two nginx sidecars, ${calls} calls x ${rounds} rounds, ${concurrency} in flight (medians):\n`,
  );
  printTable(['variant', 'rps', 'p50_ms', 'p99_ms'], rows);
  return figures;
}
