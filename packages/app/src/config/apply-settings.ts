import type { AppOptions } from '../app-options.js';
import type { Settings } from './settings-schema.js';

type Mutable<T> = { -readonly [K in keyof T]?: T[K] };

/**
 * Settings as app options: what `settings` sets, and nothing else, so that spreading the
 * result over other options overrides only those. `metrics: true` sets nothing (metrics are on
 * by default).
 */
export function settingsAsOptions(settings: Settings): Partial<AppOptions> {
  const { metrics, ...rest } = settings;
  const options: Mutable<AppOptions> = { ...rest };
  if (metrics === false) options.metrics = false;
  return options;
}

/**
 * `options` with `settings` laid over them: a setting replaces the option of its name, and the
 * `client` and `discovery` settings replace the fields they name in the options' objects (the
 * code's `client.stack` stays beside a file's `client.strategy`). `metrics: true` over
 * `metrics: false` turns metrics back on; over metrics options, keeps them.
 */
export function applySettings(options: AppOptions, settings: Settings): AppOptions {
  const merged: Mutable<AppOptions> & { service: string } = { ...options, ...settingsAsOptions(settings) };
  if (settings.client !== undefined) merged.client = { ...options.client, ...settings.client };
  if (settings.discovery !== undefined) merged.discovery = { ...options.discovery, ...settings.discovery };
  if (settings.metrics === true && options.metrics === false) delete merged.metrics;
  return merged;
}
