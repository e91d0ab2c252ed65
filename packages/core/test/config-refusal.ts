import { ConfigError } from '@trellis/core';

/** The ConfigError `run` throws, for asserting on its field and message; fails when it throws another error or none. */
export function refusal(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (ConfigError.is(error)) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}
