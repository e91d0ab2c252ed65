import { parseRules } from '@trellis/config';
import { ConfigError } from '@trellis/core';

/** Checks a rules document and answers it as it will be stored; throws ConfigError naming the dotted field. */
export type RulesValidator = (rules: unknown) => unknown;

// The rules' own check: the sections by name, each by its owner's schema, fields named by their dotted path.
const checkRules: RulesValidator = parseRules;

/**
 * The validator for a rules document: @trellis/config's parseRules and, when the
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
