export { defaultRegistry, registryAddress, registryToken } from './address.js';
export { exitCodes } from './failure.js';
export type { Input, Output, RunIo } from './io.js';
export { defaultTimeoutMs, run } from './run.js';
export { table } from './table.js';
