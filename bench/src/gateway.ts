import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BalancedPool, Pool, type Dispatcher } from 'undici';
import { ConsulRegistry } from '@trellis/registry';
import { RegistryServer } from '@trellis/registry-server';
import { measureCalls, median, printTable, type RunFigures } from './measure.js';
import { nginxPath, startReverseProxy } from './sidecar.js';

/** Forks `module` and resolves with the port it sends once it listens. */
async function forkListening(
  module: string,
  env: NodeJS.ProcessEnv = {},
): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(fileURLToPath(new URL(module, import.meta.url)), { env: { ...process.env, ...env } });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m) => resolve((m as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`${module} exited (${code}) before listening`)));
  });
  return { child, port };
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.disconnect();
  });
}

/**
 * What the gateway costs: the same GET, at the same concurrency, sent to two instances of a
 * service directly (undici's BalancedPool over both), through the gateway (its own process,
 * routing by prefix through a ServiceClient with the default stack, metrics on), and through
 * nginx as a reverse proxy to the same two instances (one worker, keep-alive upstream, prefix
 * stripped, X-Forwarded-* set); and through a bare Node proxy (node:http and undici, nothing
 * else), which tells Node's share of the gap to nginx from Trellis's. Medians of 5 alternated
 * rounds of 10 000 calls, 32 in flight.
 */
export async function gatewayBench(): Promise<Record<string, number | string | null>> {
  const registry = new RegistryServer({ logLevel: 'silent' });
  const { url: registryUrl } = await registry.listen({ port: 0, host: '127.0.0.1' });
  const children: ChildProcess[] = [];
  const pools: Dispatcher[] = [];
  let nginx: Awaited<ReturnType<typeof startReverseProxy>>;
  const consul = new ConsulRegistry({ url: registryUrl });
  try {
    const ports: number[] = [];
    for (let i = 1; i <= 2; i++) {
      const server = await forkListening('./json-server.js');
      children.push(server.child);
      ports.push(server.port);
      await consul.register({
        instance: {
          id: `users-${i}`,
          service: 'users',
          address: '127.0.0.1',
          port: server.port,
          tags: [],
          meta: { weight: 1, labels: {} },
        },
        ttlMs: 600_000,
        deregisterAfterMs: 600_000,
      });
    }
    const gateway = await forkListening('./gateway-process.js', { TRELLIS_REGISTRY_URL: registryUrl });
    children.push(gateway.child);
    const nodeProxy = await forkListening('./node-proxy.js', { UPSTREAM_PORTS: ports.join(',') });
    children.push(nodeProxy.child);
    nginx = await startReverseProxy(ports, '/api/users/');

    const concurrency = 32;
    const calls = 10_000;
    const rounds = 5;
    const target = (pool: Dispatcher, path: string) => async (): Promise<unknown> => {
      const response = await pool.request({ path, method: 'GET' });
      if (response.statusCode !== 200) throw new Error(`status ${response.statusCode} from ${path}`);
      return response.body.json();
    };
    const direct = new BalancedPool(
      ports.map((p) => `http://127.0.0.1:${p}`),
      { connections: 64 },
    );
    const throughGateway = new Pool(`http://127.0.0.1:${gateway.port}`, { connections: 64 });
    const throughNode = new Pool(`http://127.0.0.1:${nodeProxy.port}`, { connections: 64 });
    pools.push(direct, throughGateway, throughNode);
    const variants: Record<string, () => Promise<unknown>> = {
      direct: target(direct, '/users/1'),
      gateway: target(throughGateway, '/api/users/users/1'),
      node: target(throughNode, '/api/users/users/1'),
    };
    if (nginx !== undefined) {
      const throughNginx = new Pool(`http://127.0.0.1:${nginx.port}`, { connections: 64 });
      pools.push(throughNginx);
      variants.nginx = target(throughNginx, '/api/users/users/1');
    } else {
      console.log(
        `${nginxPath} not found: install Debian's nginx (apt-get install nginx) to compare the gateway with it; skipped.`,
      );
    }
    const names = Object.keys(variants);
    for (const name of names) await measureCalls(variants[name] as () => Promise<unknown>, 3_000, concurrency); // warm-up
    const runs: Record<string, RunFigures[]> = Object.fromEntries(names.map((n) => [n, []]));
    for (let r = 0; r < rounds; r++) {
      // Alternated order, so that no variant always runs on a warmer or busier machine.
      const order = r % 2 === 0 ? names : [...names].reverse();
      for (const name of order)
        runs[name]?.push(await measureCalls(variants[name] as () => Promise<unknown>, calls, concurrency));
    }
    const pick = (name: string, key: keyof RunFigures): number => median((runs[name] ?? []).map((run) => run[key]));
    console.log(
      `GET through the gateway vs directly vs nginx, 2 instances, ${calls} calls x ${rounds} rounds, ${concurrency} in flight, 127.0.0.1 (medians):\n`,
    );
    const labels: Record<string, string> = {
      direct: 'direct (undici BalancedPool over both instances)',
      gateway: 'through @trellis/gateway (own process)',
      nginx: 'through nginx (1 worker, reverse proxy)',
      node: 'through a bare Node proxy (node:http + undici, no governance)',
    };
    printTable(
      ['variant', 'rps', 'p50_ms', 'p99_ms'],
      names.map((n) => [labels[n] ?? n, pick(n, 'rps'), pick(n, 'p50Ms'), pick(n, 'p99Ms')]),
    );
    const round = (n: number, digits = 3): number => Number(n.toFixed(digits));
    const hasNginx = nginx !== undefined;
    return {
      gateway_ratio_vs_direct: round(pick('gateway', 'rps') / pick('direct', 'rps')),
      gateway_added_p99_ms: round(pick('gateway', 'p99Ms') - pick('direct', 'p99Ms')),
      gateway_added_p50_ms: round(pick('gateway', 'p50Ms') - pick('direct', 'p50Ms')),
      gateway_ratio_vs_nginx: hasNginx ? round(pick('gateway', 'rps') / pick('nginx', 'rps')) : null,
      direct_rps: Math.round(pick('direct', 'rps')),
      gateway_rps: Math.round(pick('gateway', 'rps')),
      nginx_rps: hasNginx ? Math.round(pick('nginx', 'rps')) : null,
      direct_p99_ms: round(pick('direct', 'p99Ms')),
      gateway_p99_ms: round(pick('gateway', 'p99Ms')),
      nginx_p99_ms: hasNginx ? round(pick('nginx', 'p99Ms')) : null,
      nginx_added_p99_ms: hasNginx ? round(pick('nginx', 'p99Ms') - pick('direct', 'p99Ms')) : null,
      node_proxy_rps: Math.round(pick('node', 'rps')),
      node_proxy_p99_ms: round(pick('node', 'p99Ms')),
      gateway_ratio_vs_node_proxy: round(pick('gateway', 'rps') / pick('node', 'rps')),
      concurrency,
    };
  } finally {
    await Promise.all(pools.map((p) => p.close()));
    await nginx?.close();
    await Promise.all(children.map(stop));
    await consul.close();
    await registry.close();
  }
}
