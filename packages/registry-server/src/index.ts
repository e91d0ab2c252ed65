export { parseGoDuration } from './go-duration.js';
export { logLevels, RegistryServer } from './registry-server.js';
export type { ListenOptions, ListeningAddress, LogLevel, RegistryServerOptions } from './registry-server.js';
