import { loadAppOptions, TrellisApp } from '@trellis/app';
import { appOptions } from './app-options.js';

// The options in code, then trellis.config.json (or .yaml) if there is one, then the environment
// (PORT, TRELLIS_REGISTRY_URL, ...). A bad value stops the service with one line naming it.
const app = new TrellisApp(loadAppOptions(appOptions));

// Listens, registers with the registry and heartbeats; on SIGINT or SIGTERM it deregisters,
// drains and stops.
await app.run();
