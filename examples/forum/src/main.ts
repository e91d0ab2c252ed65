import { loadAppOptions, TrellisApp } from '@trellis/app';
import { startTracingFromEnv } from '@trellis/tracing/sdk';
import { Timeline } from './timeline.js';

// Traces go out when OTEL_* variables ask for an exporter (OTEL_EXPORTER_OTLP_ENDPOINT, ...).
const tracing = startTracingFromEnv('forum');

const app = new TrellisApp(
  loadAppOptions({
    service: 'forum',
    version: '1.0.0',
    calls: ['users'],
    // Round robin, so that the demo shows calls taking turns over the users instances. The
    // default, P2C over peak EWMA, sends most calls to whichever instance answers faster.
    client: { strategy: 'round-robin' },
  }),
);
app.container.bind(Timeline).toSelf().inSingletonScope();
const timeline = app.container.get(Timeline);

// A failed call to users becomes a 503 or 502 with the error's code, by the app's error handler.
app.http.get('/posts', async () => ({ posts: await timeline.all() }));
app.http.get<{ Params: { id: string } }>('/posts/:id', async (request, reply) => {
  const post = await timeline.one(request.params.id);
  if (post === undefined) {
    return reply.code(404).send({ error: 'NOT_FOUND', message: `no post with id "${request.params.id}"` });
  }
  return post;
});

// Flushed at shutdown, so that the last requests' spans are not lost.
app.http.addHook('onClose', async () => tracing?.shutdown());

await app.run();
