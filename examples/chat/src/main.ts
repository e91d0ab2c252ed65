import { loadAppOptions } from '@trellis/app';
import { startTracingFromEnv } from '@trellis/tracing/sdk';
import { databaseFile, DataDirError } from '@trellis/example-common';
import { chatApp } from './chat-app.js';

// Traces go out when OTEL_* variables ask for an exporter (OTEL_EXPORTER_OTLP_ENDPOINT, ...).
const tracing = startTracingFromEnv('chat');

let file: string;
try {
  file = databaseFile('chat', process.env);
} catch (error) {
  if (!(error instanceof DataDirError)) throw error;
  console.error(`chat: ${error.message}`);
  process.exit(2);
}

// Options from code, then trellis.config.json or .yaml, then the environment (PORT, ...).
const app = chatApp({ ...loadAppOptions({ service: 'chat', version: '1.0.0' }), databaseFile: file });

// Flushed at shutdown, so that the last requests' spans are not lost.
app.http.addHook('onClose', async () => tracing?.shutdown());

await app.run();
