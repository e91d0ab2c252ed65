import { z } from 'zod';
import { ConfigError } from '@trellis/core';

/** A small rules schema of the tests' own, strict as the real one. */
const rulesSchema = z
  .object({
    client: z
      .object({
        retry: z
          .object({ maxAttempts: z.number().int().min(1).max(10) })
          .strict()
          .optional(),
        split: z.array(z.object({ subset: z.string(), weight: z.number().min(0).max(100) }).strict()).optional(),
      })
      .strict()
      .optional(),
    limits: z.object({ ratePerSecond: z.number().positive() }).strict().optional(),
  })
  .strict();

export type TestRules = z.infer<typeof rulesSchema>;

/** The validator the tests give: a ConfigError naming the field, as parseRules does. */
export function validate(rules: unknown): TestRules {
  const parsed = rulesSchema.safeParse(rules);
  if (!parsed.success) throw ConfigError.fromIssues(parsed.error.issues, '', 'rules');
  return parsed.data;
}

export const ana = { author: 'ana', reason: 'test' } as const;
