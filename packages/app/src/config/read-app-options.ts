import { ConfigError } from '@trellis/core';
import { validateAppOptions, type AppOptions } from '../app-options.js';
import { applySettings } from './apply-settings.js';
import { settingsFromEnv, type Environment } from './env-settings.js';
import { findSettingsFile, readSettingsFile } from './file-settings.js';

/** Where {@link readAppOptions} reads settings from besides the code's options. */
export interface ConfigSources {
  /** The environment; default `process.env`. */
  readonly env?: Environment;
  /** The directory a config file is looked for in, and named files are relative to; default `process.cwd()`. */
  readonly cwd?: string;
  /**
   * The config file: a path (relative to `cwd`), or `false` for none; default the one of
   * `trellis.config.json`, `trellis.config.yaml` or `trellis.config.yml` in `cwd`, if any.
   * `TRELLIS_CONFIG` in the environment overrides it.
   */
  readonly file?: string | false;
}

/** The variable that names the config file. */
export const configFileVariable = 'TRELLIS_CONFIG';

/**
 * The app's options from three sources, each overriding the one before (Spring Boot's order):
 * the options given in code, then the config file (`trellis.config.json`, `.yaml` or `.yml`
 * in the working directory, or the file `TRELLIS_CONFIG` names), then the environment
 * (`PORT`, `TRELLIS_REGISTRY_URL`, ...; see docs/configuration.md). Everything is checked
 * before it is returned, so that a bad value fails here, named, and never deeper in the app.
 *
 * @throws ConfigError naming the variable (`TRELLIS_WEIGHT`), the file and key
 *   (`trellis.config.yaml: client.attemptTimeoutMs`) or the option, with what it allows.
 * @example
 * const options = readAppOptions({ service: 'users', port: 8080 }, { env: { PORT: '9090' }, file: false });
 * options.port; // 9090
 */
export function readAppOptions(options: AppOptions, sources: ConfigSources = {}): AppOptions {
  const env = sources.env ?? process.env;
  const cwd = sources.cwd ?? process.cwd();
  const named = env[configFileVariable]?.trim();
  const location =
    named !== undefined && named !== ''
      ? findSettingsFile(cwd, named, configFileVariable)
      : sources.file === false
        ? undefined
        : findSettingsFile(cwd, sources.file, 'file');
  let merged = options;
  if (location !== undefined) merged = applySettings(merged, readSettingsFile(location.path, location.name).settings);
  merged = applySettings(merged, settingsFromEnv(env));
  validateAppOptions(merged);
  return merged;
}

/**
 * {@link readAppOptions} for a service's main module: on a ConfigError it prints one line on
 * standard error and exits with status 2 (a usage error, as for a command's bad arguments),
 * no stack trace: `users: invalid configuration: TRELLIS_WEIGHT must be an integer from 0 to
 * 1000000, got "abc"`.
 *
 * @example
 * const app = new TrellisApp(loadAppOptions({ service: 'users', version: '1.0.0' }));
 * await app.run();
 */
export function loadAppOptions(options: AppOptions, sources?: ConfigSources): AppOptions {
  try {
    return readAppOptions(options, sources);
  } catch (error) {
    if (!ConfigError.is(error)) throw error;
    process.stderr.write(`${String(options.service)}: invalid configuration: ${error.field} ${error.problem}\n`);
    process.exit(2);
  }
}
