import { TrellisApp } from '@trellis/app';
import { Gateway } from '@trellis/gateway';

// The gateway of the gateway benchmark, in its own process as in production: a TrellisApp with
// one route to "users" (prefix stripped), metrics on, logs at warn. It sends its port to the
// parent over IPC, and closes when the parent disconnects.
const registryUrl = process.env.TRELLIS_REGISTRY_URL ?? 'http://127.0.0.1:8500';
const app = new TrellisApp({ service: 'gateway', registryUrl, port: 0, logLevel: 'warn', drainMs: 0 });
new Gateway(app, { routes: [{ match: { pathPrefix: '/api/users/' }, service: 'users', stripPrefix: true }] });
const started = await app.start();
process.send?.({ port: Number(new URL(started.url).port) });
process.on('disconnect', () => void app.close().then(() => process.exit(0)));
