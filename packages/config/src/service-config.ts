import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError, Emitter, isServiceName, type Disposable } from '@trellis/core';
import type { ConsulKv, KvEntry } from './consul-kv.js';
import type { KvWatch, KvWatchOptions } from './kv-watch.js';
import type { ConfigLogger } from './rules-watch.js';

/** Options of {@link ServiceConfig}. */
export interface ServiceConfigOptions<S extends z.ZodObject> {
  /** The service name: `config/<service>/` in the KV, and the default environment prefix. */
  readonly service: string;
  /** The properties, their types and defaults; a nested `z.object` is a group (`db.host`). */
  readonly schema: S;
  /** A profile (`prod`, `eu`): `config/<service>,<profile>/` wins over `config/<service>/`. */
  readonly profile?: string;
  /** A JSON file of properties (an object, nested as the schema); read by start(). */
  readonly file?: string;
  /** The environment; default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  /** Prefix of the variables; default the service upper-cased, non-alphanumerics as `_`, then `_` (`FORUM_`). */
  readonly envPrefix?: string;
  /** The registry's KV; without it, configuration comes from defaults, file and environment. */
  readonly kv?: ConsulKv;
  /** Where refusals are logged, once each; default `console`. */
  readonly logger?: ConfigLogger;
  /** Refusals kept in {@link ServiceConfig.refusals}, the latest; default 100. */
  readonly maxRefusals?: number;
  /** How the KV watches query (backoff, floor, clock). */
  readonly watch?: Omit<KvWatchOptions, 'recurse'>;
}

/** A value that was refused; the last good value of the property stays. */
export interface ConfigRefusal {
  /** The property, dotted (`db.host`). */
  readonly key: string;
  /** Where the value came from: `file:<path>`, `env:<NAME>` or `kv:<key>`. */
  readonly source: string;
  readonly reason: string;
}

/** A property's value in force, and where it came from (`default`, `file:…`, `env:…`, `kv:…`). */
export interface ConfigEntry {
  readonly key: string;
  readonly value: unknown;
  readonly source: string;
}

interface Leaf {
  readonly path: readonly string[];
  readonly schema: z.ZodType;
}

interface Sourced {
  readonly value: unknown;
  readonly source: string;
}

/** A raw value from a layer: text (environment, KV) is JSON-decoded when that passes, else taken as is. */
interface RawValue {
  readonly value: unknown;
  readonly source: string;
  readonly text: boolean;
}

// Layers, lowest first; a higher one wins property by property.
const layerNames = ['file', 'env', 'kv:application', 'kv:service', 'kv:profile'] as const;
type LayerName = (typeof layerNames)[number];

/**
 * Typed configuration of one service, from layers: the schema's defaults < a JSON file < the
 * environment (`FORUM_PAGE_SIZE` for `pageSize`) < the KV's `config/application/`,
 * `config/<service>/` and `config/<service>,<profile>/` (Spring Cloud Consul's layout: one
 * property per key, `db/host` for `db.host`, JSON-decoded when it parses, else the string).
 * The KV is followed with blocking queries, so a change applies within one round trip.
 *
 * Every value is checked against its property's schema. A value that fails (or a key the
 * schema does not know) is refused: logged once with the key, the source and the reason,
 * listed in {@link refusals}, fired on {@link onRefused}; the last good value stays.
 *
 * @throws ConfigError from the constructor for a bad service name or option.
 * @example
 * import { z } from 'zod';
 * const config = new ServiceConfig({
 *   service: 'forum',
 *   schema: z.object({ pageSize: z.number().int().min(1).default(20), title: z.string().default('Forum') }),
 *   kv: new ConsulKv(),
 * });
 * await config.start(); // does not hang on a registry that is down: defaults, file and env first
 * const size: number = config.get('pageSize');
 * config.onChange('pageSize', (value) => console.log('page size is now', value));
 */
export class ServiceConfig<S extends z.ZodObject> {
  readonly service: string;
  readonly #schema: S;
  readonly #leaves = new Map<string, Leaf>();
  readonly #groups = new Set<string>();
  readonly #options: ServiceConfigOptions<S>;
  readonly #logger: ConfigLogger;
  readonly #maxRefusals: number;
  readonly #layers = new Map<LayerName, Map<string, Sourced>>();
  readonly #defaults = new Map<string, unknown>();
  readonly #refusalSeen = new Map<string, string>();
  readonly #refusals: ConfigRefusal[] = [];
  readonly #refused = new Emitter<ConfigRefusal>();
  readonly #changes = new Map<string, Emitter<{ value: unknown; previous: unknown }>>();
  readonly #watches: KvWatch[] = [];
  #values: Record<string, unknown> = {};
  #started = false;
  #closed = false;

  /** A value was refused (it is also logged once and kept in {@link refusals}). */
  readonly onRefused = this.#refused.event;

  constructor(options: ServiceConfigOptions<S>) {
    if (!isServiceName(options.service)) {
      throw new ConfigError('service', `"${String(options.service)}" is not a service name`);
    }
    if (options.profile !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(options.profile)) {
      throw new ConfigError('profile', `"${options.profile}" is not a profile name (letters, digits, "-", "_", ".")`);
    }
    const maxRefusals = options.maxRefusals ?? 100;
    if (!Number.isSafeInteger(maxRefusals) || maxRefusals < 1) {
      throw new ConfigError('maxRefusals', `must be a positive integer, got ${maxRefusals}`);
    }
    this.service = options.service;
    this.#schema = options.schema;
    this.#options = options;
    this.#logger = options.logger ?? console;
    this.#maxRefusals = maxRefusals;
    this.#collectLeaves(options.schema, []);
    for (const [key, leaf] of this.#leaves) {
      const parsed = leaf.schema.safeParse(undefined);
      if (parsed.success && parsed.data !== undefined) this.#defaults.set(key, parsed.data);
    }
    this.#update('env', this.#fromEnv(options.env ?? process.env));
  }

  /** The value in force of a top-level property (a group is an object of its properties). */
  get<K extends keyof z.output<S> & string>(key: K): z.output<S>[K] {
    return this.#values[key] as z.output<S>[K];
  }

  /** Every property in force, as the schema's type. */
  values(): z.output<S> {
    return structuredClone(this.#values) as z.output<S>;
  }

  /** Each property (dotted) with its value in force and where it came from; for status pages. */
  entries(): ConfigEntry[] {
    return [...this.#leaves.keys()].flatMap((key) => {
      const found = this.#lookup(key);
      return found === undefined ? [] : [{ key, ...found }];
    });
  }

  /** The latest refusals, oldest first (at most `maxRefusals`). */
  get refusals(): readonly ConfigRefusal[] {
    return this.#refusals;
  }

  /**
   * Calls `listener` each time the value in force of `key` changes (not when a write leaves it
   * the same).
   * @throws ConfigError for a key the schema does not have.
   */
  onChange<K extends keyof z.output<S> & string>(
    key: K,
    listener: (value: z.output<S>[K], previous: z.output<S>[K]) => void,
  ): Disposable {
    if (!(key in this.#schema.shape)) throw new ConfigError(key, 'is not a property of the schema');
    let emitter = this.#changes.get(key);
    if (emitter === undefined) this.#changes.set(key, (emitter = new Emitter()));
    return emitter.event(({ value, previous }) => listener(value as z.output<S>[K], previous as z.output<S>[K]));
  }

  /**
   * Reads the file and starts following the KV. Waits at most `timeoutMs` for the KV's first
   * answer; a registry that is down is logged and the configuration starts from the lower
   * layers, applying the KV's values when it answers.
   * @throws ConfigError for a file that cannot be read or is not a JSON object, or a required
   *   property that no layer gives (naming it, and where it could come from).
   */
  async start(timeoutMs = 5_000): Promise<void> {
    if (this.#started || this.#closed) return;
    this.#started = true;
    const { file, kv, profile } = this.#options;
    if (file !== undefined) this.#update('file', await this.#fromFile(file));
    if (kv !== undefined) {
      const prefixes: [LayerName, string][] = [
        ['kv:application', 'config/application/'],
        ['kv:service', `config/${this.service}/`],
      ];
      if (profile !== undefined) prefixes.push(['kv:profile', `config/${this.service},${profile}/`]);
      for (const [layer, prefix] of prefixes) {
        const watch = kv.watch(prefix, { ...this.#options.watch, recurse: true });
        watch.onChange((entries) => this.#update(layer, this.#fromKv(prefix, entries)));
        this.#watches.push(watch);
      }
      const outcomes = await Promise.allSettled(this.#watches.map((watch) => watch.ready(timeoutMs)));
      const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
      if (failed !== undefined) {
        const reason = failed.reason instanceof Error ? failed.reason.message : String(failed.reason);
        this.#logger.warn(
          `@trellis/config: the configuration of ${this.service} starts without the KV (${reason}); its values apply when the registry answers`,
        );
      }
    }
    for (const [key, leaf] of this.#leaves) {
      if (this.#lookup(key) === undefined && !leaf.schema.safeParse(undefined).success) {
        throw new ConfigError(
          key,
          `is required: set it in the file, the environment (${this.#envName(leaf.path)}) or the KV (config/${this.service}/${leaf.path.join('/')})`,
        );
      }
    }
  }

  /** Stops following the KV. */
  close(): void {
    this.#closed = true;
    for (const watch of this.#watches.splice(0)) watch.close();
    for (const emitter of this.#changes.values()) emitter.clear();
    this.#refused.clear();
  }

  #collectLeaves(schema: z.ZodObject, path: readonly string[]): void {
    for (const [name, child] of Object.entries<z.ZodType>(schema.shape)) {
      const childPath = [...path, name];
      if (child instanceof z.ZodObject) {
        this.#groups.add(childPath.join('.'));
        this.#collectLeaves(child, childPath);
      } else {
        this.#leaves.set(childPath.join('.'), { path: childPath, schema: child });
      }
    }
  }

  #envName(path: readonly string[]): string {
    const prefix = this.#options.envPrefix ?? `${this.service.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_`;
    return prefix + path.map(screamingSnake).join('_');
  }

  #fromEnv(env: NodeJS.ProcessEnv): Map<string, RawValue> {
    const raw = new Map<string, RawValue>();
    for (const [key, leaf] of this.#leaves) {
      const name = this.#envName(leaf.path);
      const value = env[name];
      if (value !== undefined) raw.set(key, { value, source: `env:${name}`, text: true });
    }
    return raw;
  }

  async #fromFile(file: string): Promise<Map<string, RawValue>> {
    let json: unknown;
    try {
      json = JSON.parse(await readFile(file, 'utf8'));
    } catch (error) {
      throw new ConfigError('file', `cannot read ${file} as JSON: ${(error as Error).message}`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new ConfigError('file', `${file} must hold a JSON object of properties`);
    }
    const raw = new Map<string, RawValue>();
    const walk = (object: Record<string, unknown>, path: string): void => {
      for (const [name, value] of Object.entries(object)) {
        const key = path === '' ? name : `${path}.${name}`;
        if (this.#groups.has(key) && typeof value === 'object' && value !== null && !Array.isArray(value)) {
          walk(value as Record<string, unknown>, key);
        } else {
          raw.set(key, { value, source: `file:${file}`, text: false });
        }
      }
    };
    walk(json as Record<string, unknown>, '');
    return raw;
  }

  #fromKv(prefix: string, entries: readonly KvEntry[]): Map<string, RawValue> {
    const raw = new Map<string, RawValue>();
    for (const entry of entries) {
      const rest = entry.key.slice(prefix.length);
      // A key ending in "/" is a folder, as the Consul UI makes them.
      if (rest === '' || rest.endsWith('/')) continue;
      raw.set(rest.split('/').join('.'), { value: entry.value, source: `kv:${entry.key}`, text: true });
    }
    return raw;
  }

  /** Replaces a layer's values with `raw`, keeping the last good value of each refused one. */
  #update(layer: LayerName, raw: ReadonlyMap<string, RawValue>): void {
    if (this.#closed) return;
    const before = this.#layers.get(layer) ?? new Map<string, Sourced>();
    const after = new Map<string, Sourced>();
    for (const [key, item] of raw) {
      const leaf = this.#leaves.get(key);
      const problem = leaf === undefined ? 'the schema has no such property' : undefined;
      const parsed = leaf === undefined ? undefined : parse(leaf.schema, item);
      const seenKey = `${layer}\n${key}`;
      if (parsed !== undefined && parsed.ok) {
        this.#refusalSeen.delete(seenKey);
        after.set(key, { value: parsed.value, source: item.source });
        continue;
      }
      const kept = before.get(key);
      if (kept !== undefined) after.set(key, kept);
      this.#refuse(seenKey, { key, source: item.source, reason: problem ?? parsed?.reason ?? 'invalid' }, item);
    }
    for (const key of [...this.#refusalSeen.keys()]) {
      if (key.startsWith(`${layer}\n`) && !raw.has(key.slice(layer.length + 1))) this.#refusalSeen.delete(key);
    }
    this.#layers.set(layer, after);
    this.#recompute();
  }

  #refuse(seenKey: string, refusal: ConfigRefusal, item: RawValue): void {
    const signature = `${refusal.source}\n${refusal.reason}\n${item.text ? String(item.value) : JSON.stringify(item.value)}`;
    if (this.#refusalSeen.get(seenKey) === signature) return;
    this.#refusalSeen.set(seenKey, signature);
    this.#refusals.push(refusal);
    if (this.#refusals.length > this.#maxRefusals) this.#refusals.shift();
    this.#logger.warn(
      `@trellis/config: refused ${refusal.key} of ${this.service} from ${refusal.source}: ${refusal.reason}; the last good value stays`,
    );
    this.#refused.emit(refusal);
  }

  #lookup(key: string): Sourced | undefined {
    for (let i = layerNames.length - 1; i >= 0; i--) {
      const found = this.#layers.get(layerNames[i] as LayerName)?.get(key);
      if (found !== undefined) return found;
    }
    return this.#defaults.has(key) ? { value: this.#defaults.get(key), source: 'default' } : undefined;
  }

  #recompute(): void {
    const values: Record<string, unknown> = {};
    for (const [key, leaf] of this.#leaves) {
      const found = this.#lookup(key);
      if (found === undefined) continue;
      let target = values;
      for (const part of leaf.path.slice(0, -1)) target = (target[part] ??= {}) as Record<string, unknown>;
      target[leaf.path.at(-1) as string] = found.value;
    }
    // A group with nothing set is an empty object, so that `get('db').host` never throws.
    for (const group of this.#groups) {
      let target = values;
      for (const part of group.split('.')) target = (target[part] ??= {}) as Record<string, unknown>;
    }
    const previous = this.#values;
    this.#values = values;
    for (const [key, emitter] of this.#changes) {
      if (JSON.stringify(previous[key]) !== JSON.stringify(values[key])) {
        emitter.emit({ value: values[key], previous: previous[key] });
      }
    }
  }
}

/** Checks a raw value against its property: text is tried JSON-decoded first, then as the string. */
function parse(schema: z.ZodType, item: RawValue): { ok: true; value: unknown } | { ok: false; reason: string } {
  let first: z.ZodSafeParseResult<unknown> | undefined;
  if (item.text) {
    try {
      first = schema.safeParse(JSON.parse(String(item.value)));
    } catch {
      // Not JSON: the string itself.
    }
    if (first?.success === true) return { ok: true, value: first.data };
  }
  const second = schema.safeParse(item.value);
  if (second.success) return { ok: true, value: second.data };
  const issue = (first ?? second).error?.issues[0];
  return { ok: false, reason: issue?.message ?? 'invalid' };
}

function screamingSnake(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]/g, '_')
    .toUpperCase();
}
