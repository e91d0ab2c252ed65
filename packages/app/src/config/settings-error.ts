import { ConfigError, type SchemaIssue } from '@trellis/core';
import { knownKeys } from './settings-schema.js';

/** How a value is shown after "got": strings quoted, long values cut short, so the error stays one line. */
export function shown(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) {
    return String(value);
  }
  // JSON for what a file or an environment gives; a function or symbol from code shows its type.
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Where one source of settings puts a field, and what it gave there. */
export interface SettingsSource {
  /** How the source names a field (a dotted path such as "client.strategy"): a variable, or a file's key. */
  name(field: string): string;
  /** The value the source gave at the path of a zod issue, as the user wrote it. */
  given(path: readonly PropertyKey[]): unknown;
}

/**
 * The ConfigError for settings that failed the schema: the field as `ConfigError.fromIssues`
 * names it (an unknown key first), placed in its source, with what is allowed and what was
 * given, e.g. `TRELLIS_WEIGHT`: `must be an integer from 0 to 1000000, got "abc"`.
 */
export function settingsError(issues: readonly SchemaIssue[], source: SettingsSource): ConfigError {
  const named = ConfigError.fromIssues(issues, '', 'settings');
  const unknown = issues.find((issue) => issue.code === 'unrecognized_keys');
  if (unknown !== undefined) {
    const where = ConfigError.fromIssues([{ ...unknown, code: 'custom' }], '', '').field;
    return new ConfigError(
      source.name(named.field),
      `is not a known key; the keys${where === '' ? '' : ` of ${where}`} are ${knownKeys(where).join(', ')}`,
    );
  }
  const issue = issues[0];
  const problem = issue === undefined ? named.problem : `${named.problem}, got ${shown(source.given(issue.path))}`;
  return new ConfigError(source.name(named.field), problem);
}
