import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSystem } from './system.js';

// `npm run demo`: the whole system on one machine, with nothing to install but npm packages.
function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    console.error(`${name} must be an integer from 0 to 65535, got "${raw}"`);
    process.exit(2);
  }
  return port;
}

const registryPort = portFromEnv('REGISTRY_PORT', 8500);
const gatewayPort = portFromEnv('GATEWAY_PORT', 8080);
// The services' SQLite files, kept from run to run: what you sign up and post is there next time.
const dataDir = path.resolve(process.env['TRELLIS_DATA_DIR'] || fileURLToPath(new URL('../data', import.meta.url)));
try {
  mkdirSync(dataDir, { recursive: true });
} catch (error) {
  console.error(
    `TRELLIS_DATA_DIR=${dataDir} cannot be made: ${error instanceof Error ? error.message : String(error)}`,
  );
  process.exit(2);
}

console.log(
  'Starting the Trellis demo on 127.0.0.1: a registry server, two users and two mail instances, ' +
    'the forum, the chat and the gateway ...',
);
let system: Awaited<ReturnType<typeof startSystem>>;
try {
  system = await startSystem({
    registryPort,
    gatewayPort,
    dataDir,
    logLevel: process.env['TRELLIS_LOG_LEVEL'] ?? 'warn',
  });
} catch (error) {
  console.error(`The demo could not start: ${error instanceof Error ? error.message : String(error)}`);
  console.error('Is another program using the port? Set REGISTRY_PORT or GATEWAY_PORT to choose others.');
  process.exit(1);
}

const gateway = system.gateway!.url;
const forum = system.forum!.url;
const lines = [
  ['gateway', `${gateway}/`, 'the one public entry: sign up, then the forum, the chat and the mailbox'],
  ['gateway', `${gateway}/gateway`, "the gateway's routes, the services behind them and their instances' health"],
  ['registry', `${system.registry.url}/ui/`, "the registry's dashboard: services, instances, health checks, KV, live"],
  ['forum', `${forum}/trellis`, "the forum's governance: users' and mail's instances, breakers, latency, retry budget"],
  ['gateway', `${gateway}/metrics`, "the gateway's metrics, its calls to every service included (Prometheus's format)"],
  ['registry', `${system.registry.url}/v1/health/service/users?passing`, "the registry's view, in Consul's API"],
];
// Before "Everything is up" is printed: whoever reads that line may signal at once.
let stopping = false;
const stop = (signal: NodeJS.Signals): void => {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping the gateway, forum and chat, users and mail, then the registry ...`);
  system.stop().then(
    () => {
      console.log('All stopped.');
      process.exit(0);
    },
    (error: unknown) => {
      console.error('Stopping failed:', error);
      process.exit(1);
    },
  );
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
// A closed terminal stops the demo as Ctrl-C does.
process.on('SIGHUP', stop);

console.log('\nEverything is up. Open:\n');
for (const [name, url, what] of lines) console.log(`  ${name?.padEnd(9)} ${url}\n            ${what}`);
console.log(`\nThe services' data is in ${dataDir}; delete it to start afresh.`);
console.log('Press Ctrl-C to stop everything.\n');

// A service that dies on its own is reported, not silently missed.
for (const p of system.processes) {
  void p.exited.then((code) => {
    if (!stopping) console.error(`[${p.name}] exited unexpectedly (${code})`);
  });
}
