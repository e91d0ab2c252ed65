import { ConfigError } from '@trellis/core';

/** The field a ConfigError thrown by `make` names, or undefined when it throws none. */
export function configField(make: () => unknown): string | undefined {
  try {
    make();
  } catch (error) {
    return ConfigError.is(error) ? error.field : undefined;
  }
  return undefined;
}
