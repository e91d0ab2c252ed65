#!/usr/bin/env node
// @ts-check
// The `trellis-registry` bin. It lives outside dist/ so that npm links it when a fresh clone is
// installed, before anything is built, and it runs the built CLI in this same process (no
// child), so that a signal sent to the bin reaches the server itself.
import { existsSync } from 'node:fs';
import process from 'node:process';
import { clearInterval, setInterval } from 'node:timers';
import { URL, fileURLToPath } from 'node:url';

const cli = new URL('../dist/cli.js', import.meta.url);
// Only the missing build gets this line; any other failure of the import shows itself.
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write(
    `trellis-registry: ${fileURLToPath(cli)} does not exist (the package is not built); run \`npm run build\` at the repository root\n`,
  );
  process.exit(1);
}

// `npx trellis-registry` and npm scripts run the bin under `sh -c`, and npm passes SIGTERM to
// that shell only; dash (/bin/sh on Debian and Ubuntu) then dies without passing it on, and
// the server would live on, orphaned, on its port. So under npm, the parent going away stops
// the server as SIGTERM does. Polled: no event tells a process that its parent has gone.
const parent = process.ppid;
if (process.env['npm_lifecycle_event'] !== undefined && parent > 1) {
  const watch = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(watch);
    process.kill(process.pid, 'SIGTERM');
  }, 250).unref();
}

await import(cli.href);
