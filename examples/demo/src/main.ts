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
const forumPort = portFromEnv('FORUM_PORT', 3000);

console.log('Starting the Trellis demo: a registry server, two users instances and a forum, on 127.0.0.1 ...');
let system: Awaited<ReturnType<typeof startSystem>>;
try {
  system = await startSystem({ registryPort, forumPort, logLevel: process.env['TRELLIS_LOG_LEVEL'] ?? 'warn' });
} catch (error) {
  console.error(`The demo could not start: ${error instanceof Error ? error.message : String(error)}`);
  console.error('Is another program using the port? Set REGISTRY_PORT or FORUM_PORT to choose others.');
  process.exit(1);
}

const lines = [
  [
    'forum',
    `${system.forum.url}/boards/announcements/threads`,
    'threads with their authors, fetched from users by service name',
  ],
  ['forum', `${system.forum.url}/threads/1`, 'reload: "authorServedBy" alternates between the users instances'],
  ['forum', `${system.forum.url}/trellis`, "the forum's governance: users' instances, breakers, latency, retry budget"],
  ['forum', `${system.forum.url}/metrics`, "the forum's metrics, calls to users included (Prometheus's format)"],
  ...system.users.map((u) => [u.name, `${u.url}/users/1`, 'one users instance, called directly']),
  ['registry', `${system.registry.url}/ui/`, "the registry's dashboard: services, instances, health checks, KV, live"],
  ['registry', `${system.registry.url}/v1/health/service/users?passing`, "the registry's view, in Consul's API"],
  ['registry', `${system.registry.url}/v1/trellis/prometheus-targets`, 'what a Prometheus finds to scrape'],
];
// Before "Everything is up" is printed: whoever reads that line may signal at once.
let stopping = false;
const stop = (signal: NodeJS.Signals): void => {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping the forum, the users instances, then the registry ...`);
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
console.log('\nPress Ctrl-C to stop everything.\n');

// A service that dies on its own is reported, not silently missed.
for (const p of [system.registry, system.forum, ...system.users]) {
  void p.exited.then((code) => {
    if (!stopping) console.error(`[${p.name}] exited unexpectedly (${code})`);
  });
}
