import { ConfigError } from '@trellis/core';
import type { z } from 'zod';

/**
 * Validates `input` with `schema`, or throws a ConfigError whose field is the path of the first
 * problem below `root`, e.g. "routes[1].split[0].weight" ("rules" for the root itself).
 */
export function parseWith<T>(schema: z.ZodType<T>, input: unknown, root: string): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  // A typo ("wieght") also makes the real key look missing; naming the typo helps more.
  const issues = result.error.issues;
  const issue = issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0];
  if (issue === undefined) throw new ConfigError(root, 'invalid');
  const path: PropertyKey[] = [...issue.path];
  // An unknown key (a typo such as "heders") is named itself, not its parent object.
  if (issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined) path.push(issue.keys[0]);
  const field = fieldPath(root, path);
  throw new ConfigError(field === '' ? 'rules' : field, issue.message);
}

/** "routes" + [1, "split", 0, "weight"] → "routes[1].split[0].weight". */
export function fieldPath(root: string, path: readonly PropertyKey[]): string {
  let field = root;
  for (const part of path) {
    if (typeof part === 'number') field += `[${part}]`;
    else field += field === '' ? String(part) : `.${String(part)}`;
  }
  return field;
}
