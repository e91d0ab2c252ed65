import { loadAppOptions, TrellisApp } from '@trellis/app';
import { startTracingFromEnv } from '@trellis/tracing/sdk';
import { users } from './users.js';

// Traces go out when OTEL_* variables ask for an exporter (OTEL_EXPORTER_OTLP_ENDPOINT, ...).
const tracing = startTracingFromEnv('users');

const app = new TrellisApp(loadAppOptions({ service: 'users', version: '1.0.0' }));

// `servedBy` names the instance that answered, so that load balancing can be seen from outside.
app.http.get('/users', async () => ({ users, servedBy: app.instance?.id }));
app.http.get<{ Params: { id: string } }>('/users/:id', async (request, reply) => {
  const user = users.find((u) => u.id === request.params.id);
  if (user === undefined) {
    return reply.code(404).send({ error: 'NOT_FOUND', message: `no user with id "${request.params.id}"` });
  }
  return { ...user, servedBy: app.instance?.id };
});

// Flushed at shutdown, so that the last requests' spans are not lost.
app.http.addHook('onClose', async () => tracing?.shutdown());

await app.run();
