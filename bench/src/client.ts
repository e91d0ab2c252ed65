import { fork } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import axios from 'axios';
import type { Reply, ServiceInstance } from '@trellis/core';
import { ServiceClient, type Transport } from '@trellis/client';
import { Discovery, MemoryRegistry } from '@trellis/registry';
import { measureCalls, median, nsPerCall, printTable, type RunFigures } from './measure.js';

/**
 * What a governed call costs over a bare axios call to the same server on 127.0.0.1, and what
 * the pipeline itself costs (discovery cache, round robin, filters) with the network taken out.
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
  const client = new ServiceClient({ service: 'users', discovery });
  // The baseline is configured as the Trellis transport is: keep-alive, no redirect following.
  const bare = axios.create({
    httpAgent: new http.Agent({ keepAlive: true, maxSockets: 64 }),
    baseURL: `http://127.0.0.1:${port}`,
    maxRedirects: 0,
  });

  const calls = 10_000;
  const concurrency = 16;
  const rounds = 5;
  const axiosRuns: RunFigures[] = [];
  const trellisRuns: RunFigures[] = [];
  // Warm both paths, then alternate rounds so that drift hits both alike.
  await measureCalls(() => bare.get('/users/1'), 2_000, concurrency);
  await measureCalls(() => client.get('/users/1'), 2_000, concurrency);
  for (let r = 0; r < rounds; r++) {
    axiosRuns.push(await measureCalls(() => bare.get('/users/1'), calls, concurrency));
    trellisRuns.push(await measureCalls(() => client.get('/users/1'), calls, concurrency));
  }
  const pick = (runs: RunFigures[], key: keyof RunFigures): number => median(runs.map((run) => run[key]));

  // The pipeline alone: the same client over a transport that answers at once.
  const reply: Reply = { status: 200, headers: {}, body: { id: '1' }, instance };
  const instant: Transport = { send: () => Promise.resolve(reply), close: () => Promise.resolve() };
  const offline = new ServiceClient({ service: 'users', discovery, transport: instant });
  const bareCall = (): Promise<Reply> =>
    instant.send({ service: 'users', method: 'GET', path: '/', headers: {} }, instance);
  await nsPerCall(bareCall, 100_000);
  await nsPerCall(() => offline.get('/users/1'), 100_000);
  const bareNs = await nsPerCall(bareCall, 500_000);
  const pipelineNs = await nsPerCall(() => offline.get('/users/1'), 500_000);

  await client.close();
  await discovery.close();
  await registry.close();
  server.disconnect();

  const axiosRps = pick(axiosRuns, 'rps');
  const trellisRps = pick(trellisRuns, 'rps');
  console.log(
    `Governed call vs bare axios, ${calls} calls x ${rounds} rounds, ${concurrency} in flight, 127.0.0.1 (medians):\n`,
  );
  printTable(
    ['variant', 'rps', 'p50_ms', 'p99_ms', 'mean_ms'],
    [
      ['axios (baseline)', axiosRps, pick(axiosRuns, 'p50Ms'), pick(axiosRuns, 'p99Ms'), pick(axiosRuns, 'meanMs')],
      [
        'trellis client',
        trellisRps,
        pick(trellisRuns, 'p50Ms'),
        pick(trellisRuns, 'p99Ms'),
        pick(trellisRuns, 'meanMs'),
      ],
    ],
  );
  console.log(`\nPipeline without the network (${500_000} sequential calls):\n`);
  printTable(
    ['variant', 'ns_per_call'],
    [
      ['bare async call (baseline)', bareNs],
      ['discovery + round robin + filters', pipelineNs],
    ],
  );
  const ratio = trellisRps / axiosRps;
  console.log(`\nratio_vs_axios (throughput, trellis / axios): ${ratio.toFixed(3)}`);
  return {
    axios_rps: Math.round(axiosRps),
    trellis_rps: Math.round(trellisRps),
    ratio_vs_axios: Number(ratio.toFixed(3)),
    axios_p99_ms: Number(pick(axiosRuns, 'p99Ms').toFixed(3)),
    trellis_p99_ms: Number(pick(trellisRuns, 'p99Ms').toFixed(3)),
    pipeline_ns_per_call: Math.round(pipelineNs),
    bare_ns_per_call: Math.round(bareNs),
    pipeline_overhead_ns_per_call: Math.round(pipelineNs - bareNs),
  };
}
