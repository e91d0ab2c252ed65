export { AclInputError, AclNotFoundError, AclStore } from './acl-store.js';
export type { AclChange, AclPolicy, AclState, AclToken } from './acl-store.js';
export { parseGoDuration } from './go-duration.js';
export { logLevels, RegistryServer } from './registry-server.js';
export { DataDirError } from './state-journal.js';
export type {
  AclOptions,
  ListenOptions,
  ListeningAddress,
  LogLevel,
  RegistryServerOptions,
} from './registry-server.js';
