export { AclInputError, AclNotFoundError, AclStore } from './acl/acl-store.js';
export type { AclChange, AclPolicy, AclState, AclToken } from './acl/acl-store.js';
export { parseGoDuration } from './http/go-duration.js';
export { logLevels, RegistryServer } from './registry-server.js';
export { DataCorruptError, DataDirError } from './persistence/data-dir.js';
export type {
  AclOptions,
  ListenOptions,
  ListeningAddress,
  LogLevel,
  RegistryServerOptions,
  RegistryServerStats,
} from './registry-server.js';
export { prometheusTargetsPath } from './catalog/prometheus-targets.js';
export type { TargetGroup } from './catalog/prometheus-targets.js';
