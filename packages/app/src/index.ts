export { appOptionsFromEnv } from './app-options.js';
export type { AppOptions, LogLevel } from './app-options.js';
export { AppTokens, clientToken } from './tokens.js';
export { TrellisApp } from './trellis-app.js';
export type { StartedApp } from './trellis-app.js';
