import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAppOptions, TrellisApp } from '@trellis/app';
import { Gateway } from '@trellis/gateway';
import { startTracingFromEnv } from '@trellis/tracing/sdk';

// The folder of this example (dist/ is one level down): routes.json and public/ are there.
const exampleDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// Traces go out when OTEL_* variables ask for an exporter; the gateway starts each trace.
const tracing = startTracingFromEnv('gateway');

// Options from code, then trellis.config.json or .yaml, then the environment (PORT, REGISTRY_URL, ...).
const app = new TrellisApp(loadAppOptions({ service: 'gateway', version: '1.0.0' }));

// Routes from the file, reloaded when it changes; static roots ("public") are relative to
// GATEWAY_BASE_DIR when set (a test's own folder of pages), else to the file's folder.
new Gateway(app, {
  routesFile: process.env.GATEWAY_ROUTES_FILE ?? path.join(exampleDir, 'routes.json'),
  ...(process.env.GATEWAY_BASE_DIR === undefined ? {} : { baseDir: process.env.GATEWAY_BASE_DIR }),
  auth: { service: 'users', path: '/sessions/{token}' },
});

app.http.addHook('onClose', async () => tracing?.shutdown());

await app.run();
