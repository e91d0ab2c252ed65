import { clientBench } from './client.js';
import { controlPlaneBench } from './control-plane.js';
import { controllerBench } from './controller.js';
import { discoveryBench } from './discovery.js';
import { gatewayBench } from './gateway.js';
import { loadbalancerBench } from './loadbalancer.js';
import { ratelimitBench } from './ratelimit.js';
import { registryBench } from './registry.js';
import { resilienceBench } from './resilience.js';

// `npm run bench -- <name>`: each benchmark prints its table, then one JSON line as its last.
const benches: Record<string, () => Promise<Record<string, number | string | null>>> = {
  client: clientBench,
  'control-plane': controlPlaneBench,
  controller: controllerBench,
  discovery: discoveryBench,
  gateway: gatewayBench,
  loadbalancer: loadbalancerBench,
  ratelimit: ratelimitBench,
  registry: registryBench,
  resilience: resilienceBench,
};

const names = process.argv.slice(2);
if (names.length === 0 || names.some((n) => !(n in benches))) {
  console.error(`usage: npm run bench -- <name>...\nbenchmarks: ${Object.keys(benches).join(', ')}`);
  process.exit(2);
}
for (const name of names) {
  const figures = await (benches[name] as () => Promise<Record<string, number | string | null>>)();
  console.log(JSON.stringify({ bench: name, node: process.version, ...figures }));
}
