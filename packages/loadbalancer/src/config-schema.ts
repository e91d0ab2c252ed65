import { ConfigError } from '@trellis/core';
import type { z } from 'zod';

/**
 * Validates `input` with `schema`, or throws a ConfigError whose field is the path of the first
 * problem below `root`, e.g. "routes[1].split[0].weight" ("rules" for the root itself).
 */
export function parseWith<T>(schema: z.ZodType<T>, input: unknown, root: string): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw ConfigError.fromIssues(result.error.issues, root, root === '' ? 'rules' : root);
}
