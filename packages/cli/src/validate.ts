import { parseClientRules } from '@trellis/client';
import { ConfigError } from '@trellis/core';

/** Checks a rules document and answers it as it will be stored; throws ConfigError naming the dotted field. */
export type RulesValidator = (rules: unknown) => unknown;

const sections = new Set(['client', 'limits', 'gateway']);

// The rules' own check, until @trellis/config's parseRules is in: the sections by name, and the
// client section by @trellis/client's own schema.
function checkRules(input: unknown): unknown {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError('rules', 'must be an object with "client", "limits" and/or "gateway"');
  }
  for (const key of Object.keys(input)) if (!sections.has(key)) throw new ConfigError(key, 'unknown key');
  const client = (input as { client?: unknown }).client;
  if (client !== undefined) {
    try {
      parseClientRules(client);
    } catch (error) {
      if (ConfigError.is(error)) {
        throw new ConfigError(error.field === 'rules' ? 'client' : `client.${error.field}`, error.problem);
      }
      throw error;
    }
  }
  return input;
}

/**
 * The validator for a rules document: @trellis/config's check of the rules and, when the
 * document has `gateway.routes`, @trellis/gateway's own check of each route (loaded only then:
 * the gateway package is large), with its fields named from the document's root
 * (`gateway.routes[0].match.pathPrefix`).
 *
 * @example
 * const validate = await rulesValidator({ gateway: { routes: [] } });
 * validate({ gateway: { routes: [] } });
 */
export async function rulesValidator(document: unknown): Promise<RulesValidator> {
  const routes = (document as { gateway?: { routes?: unknown } } | null)?.gateway?.routes;
  if (routes === undefined) return checkRules;
  const { parseRoutes } = await import('@trellis/gateway');
  return (input) => {
    const rules = checkRules(input);
    const given = (input as { gateway?: { routes?: unknown } }).gateway?.routes;
    if (given !== undefined) {
      try {
        parseRoutes(given);
      } catch (error) {
        if (ConfigError.is(error)) throw new ConfigError(`gateway.${error.field}`, error.problem);
        throw error;
      }
    }
    return rules;
  };
}
