export { ConsulKv, maxKvValueBytes, maxTxnOps } from './consul-kv.js';
export type { ConsulKvOptions, KvEntry, KvOp, KvQueryOptions, KvView, SessionOptions } from './consul-kv.js';
export { KvTooLargeError, KvTxnError, RulesConflictError } from './errors.js';
export type { KvTxnOpError } from './errors.js';
export { KvWatch } from './kv-watch.js';
export type { KvQuery, KvRecovered, KvWatchOptions } from './kv-watch.js';
