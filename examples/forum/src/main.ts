import { loadAppOptions, TrellisApp } from '@trellis/app';
import { startTracingFromEnv } from '@trellis/tracing/sdk';
import { PostsController } from './posts-controller.js';
import { UsersClient } from './users-client.js';

// Traces go out when OTEL_* variables ask for an exporter (OTEL_EXPORTER_OTLP_ENDPOINT, ...).
const tracing = startTracingFromEnv('forum');

const app = new TrellisApp(
  loadAppOptions({
    service: 'forum',
    version: '1.0.0',
    controllers: [PostsController],
    clients: [UsersClient],
    // Round robin, so that the demo shows calls taking turns over the users instances. The
    // default, P2C over peak EWMA, sends most calls to whichever instance answers faster.
    client: { strategy: 'round-robin' },
  }),
);

// Flushed at shutdown, so that the last requests' spans are not lost.
app.http.addHook('onClose', async () => tracing?.shutdown());

await app.run();
