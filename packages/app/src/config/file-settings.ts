import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ConfigError } from '@trellis/core';
import { settingsSchema, type Settings } from './settings-schema.js';
import { settingsError } from './settings-error.js';

/** The names a config file is looked for under in the working directory, in this order. */
export const configFileNames = ['trellis.config.json', 'trellis.config.yaml', 'trellis.config.yml'] as const;

/** A config file read and checked: its settings, and the name errors give it. */
export interface SettingsFile {
  /** The path as given, or the file name when found in the working directory. */
  readonly name: string;
  readonly settings: Settings;
}

/**
 * Where the config file is: `named` (from `TRELLIS_CONFIG`, or the code's `file`) relative to
 * `cwd`, else the one of {@link configFileNames} present in `cwd`; undefined when there is none.
 *
 * @throws ConfigError naming `namedBy` when the named file does not exist or is not JSON or YAML
 *   by its extension, and naming the files when `cwd` holds more than one.
 */
export function findSettingsFile(
  cwd: string,
  named: string | undefined,
  namedBy: string,
): { path: string; name: string } | undefined {
  if (named !== undefined) {
    const file = path.resolve(cwd, named);
    if (!/\.(json|ya?ml)$/i.test(file)) {
      throw new ConfigError(namedBy, `must name a .json, .yaml or .yml file, got ${JSON.stringify(named)}`);
    }
    if (!existsSync(file)) throw new ConfigError(namedBy, `names a file that does not exist: ${file}`);
    return { path: file, name: named };
  }
  const present = configFileNames.filter((name) => existsSync(path.join(cwd, name)));
  if (present.length > 1) {
    // Reading one and ignoring the other would hide a setting someone believes is in force.
    throw new ConfigError(present.join(' and '), `are both in ${cwd}: keep one, so that no setting is ignored`);
  }
  const [name] = present;
  return name === undefined ? undefined : { path: path.join(cwd, name), name };
}

/**
 * Reads and checks a config file: JSON for `.json`, YAML for `.yaml` and `.yml`. An empty
 * YAML file holds no settings.
 *
 * @throws ConfigError naming the file, with the line and column of a syntax error, or the file
 *   and key of a value the schema refuses (`trellis.config.yaml: client.attemptTimeoutMs`).
 * @example
 * const file = readSettingsFile('/srv/users/trellis.config.yaml', 'trellis.config.yaml');
 * file.settings.port; // e.g. 8080
 */
export function readSettingsFile(file: string, name: string): SettingsFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(name, `cannot be read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const value = /\.json$/i.test(file) ? parseJson(text, name) : parseYamlText(text, name);
  if (value === null || value === undefined) return { name, settings: {} };
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(name, 'must hold an object of settings, e.g. {"port": 8080}');
  }
  const result = settingsSchema.safeParse(value);
  if (result.success) return { name, settings: result.data };
  throw settingsError(result.error.issues, {
    name: (field) => `${name}: ${field}`,
    given: (at) => at.reduce<unknown>((v, key) => (v as Record<PropertyKey, unknown> | undefined)?.[key], value),
  });
}

function parseJson(text: string, name: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // V8 says "at position N", and on Node 22+ adds "(line L column C)": the line is computed
    // from the position, so that Node 20 gives it too.
    const position = /at position (\d+)/.exec(message);
    // Some messages quote the text instead ("Unexpected token 'x', "{x..." is not valid JSON"):
    // the quote is cut and newlines escaped, so that the error stays one line.
    const reason = message
      .replace(/\s*(in JSON )?at position \d+.*$/s, '')
      .replace(/, ".*" is not valid JSON$/s, '')
      .replace(/\r?\n/g, '\\n');
    if (position === null) throw new ConfigError(name, `is not valid JSON: ${reason}`);
    const before = text.slice(0, Number(position[1]));
    const line = before.split('\n').length;
    const column = before.length - before.lastIndexOf('\n');
    throw new ConfigError(name, `is not valid JSON at line ${line}, column ${column}: ${reason}`);
  }
}

function parseYamlText(text: string, name: string): unknown {
  try {
    return parseYaml(text) as unknown;
  } catch (error) {
    if (!(error instanceof YAMLParseError)) throw error;
    const at = error.linePos?.[0];
    const reason = error.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? error.code;
    throw new ConfigError(
      name,
      at === undefined
        ? `is not valid YAML: ${reason}`
        : `is not valid YAML at line ${at.line}, column ${at.col}: ${reason}`,
    );
  }
}
