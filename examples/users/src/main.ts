import { loadAppOptions, TrellisApp } from '@trellis/app';
import { startTracingFromEnv } from '@trellis/tracing/sdk';
import { UsersController } from './users-controller.js';

// Traces go out when OTEL_* variables ask for an exporter (OTEL_EXPORTER_OTLP_ENDPOINT, ...).
const tracing = startTracingFromEnv('users');

// Options from code, then trellis.config.json or .yaml, then the environment (PORT, ...).
const app = new TrellisApp(loadAppOptions({ service: 'users', version: '1.0.0', controllers: [UsersController] }));

// Flushed at shutdown, so that the last requests' spans are not lost.
app.http.addHook('onClose', async () => tracing?.shutdown());

await app.run();
