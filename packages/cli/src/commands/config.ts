import type { Context } from '../context.js';
import { OperationError, UsageError } from '../failure.js';
import { table } from '../table.js';

// The layers of a service's configuration in KV, Spring Cloud Consul's layout: later ones win.
//   config/application/<key>          every service
//   config/<service>/<key>            the service
//   config/<service>,<profile>/<key>  the service under a profile
// A nested property `a.b` is the key `a/b`.

/** One value of one layer. */
interface LayerValue {
  readonly layer: string;
  readonly value: string;
}

/** A property as the service sees it: the winning value, and the layers it overrides. */
export interface ConfigProperty {
  readonly key: string;
  readonly value: unknown;
  /** The raw text stored. */
  readonly raw: string;
  /** The prefix of the layer it comes from, e.g. `config/forum,dev/`. */
  readonly from: string;
  /** The layers that also hold it and lose, weakest first. */
  readonly overrides: readonly LayerValue[];
}

function checkName(value: string, what: string): void {
  if (value === '' || /[/,]/.test(value)) throw new UsageError(`${what} "${value}" must be a name without "/" or ","`);
}

/** The KV prefixes of a service's configuration, weakest first. */
export function configLayers(service: string, profile: string | undefined): string[] {
  checkName(service, '<service>');
  if (profile !== undefined) checkName(profile, '--profile');
  return [
    'config/application/',
    ...(service === 'application' ? [] : [`config/${service}/`]),
    ...(profile === undefined ? [] : [`config/${service},${profile}/`]),
  ];
}

/** A property name as a KV key below a layer: `a.b` → `a/b`. */
function keyPath(key: string): string {
  const path = key.replaceAll('.', '/');
  if (path === '' || path.startsWith('/') || path.endsWith('/') || path.includes('//')) {
    throw new UsageError(`<key> "${key}" must be a property name such as pageSize or mail.from`);
  }
  return path;
}

/** The value a service reads: JSON when the text parses as JSON, else the text itself. */
function decoded(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

/** `trellis config get <service> [key] [--profile p]`: the layers, and which one wins for each key. */
export async function configGet(
  context: Context,
  service: string,
  key: string | undefined,
  options: { profile?: string },
): Promise<void> {
  const layers = configLayers(service, options.profile);
  const path = key === undefined ? undefined : keyPath(key);
  const kv = context.kv();
  const listed = await Promise.all(layers.map((layer) => kv.list(layer)));
  const byKey = new Map<string, LayerValue[]>();
  listed.forEach((entries, i) => {
    const layer = layers[i] as string;
    for (const entry of entries) {
      const name = entry.key.slice(layer.length);
      // A key ending in "/" is a folder some tools make; it holds no property.
      if (name === '' || name.endsWith('/')) continue;
      const values = byKey.get(name) ?? [];
      values.push({ layer, value: entry.value });
      byKey.set(name, values);
    }
  });
  const properties: ConfigProperty[] = [...byKey.entries()]
    .filter(([name]) => path === undefined || name === path)
    .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
    .map(([name, values]) => {
      const winner = values[values.length - 1] as LayerValue;
      return {
        key: name.replaceAll('/', '.'),
        value: decoded(winner.value),
        raw: winner.value,
        from: winner.layer,
        overrides: values.slice(0, -1),
      };
    });
  if (key !== undefined && properties.length === 0) {
    throw new OperationError(
      `no layer holds "${key}" for ${service}${options.profile === undefined ? '' : ` with profile ${options.profile}`} (looked in ${layers.join(', ')})`,
    );
  }
  if (context.json) return context.outJson({ service, profile: options.profile ?? null, layers, properties });
  if (properties.length === 0) {
    return context.out(`no configuration for ${service} in ${layers.join(', ')}\n`);
  }
  context.out(
    table(
      ['KEY', 'VALUE', 'FROM', 'OVERRIDES'],
      properties.map((p) => [
        p.key,
        p.raw,
        p.from,
        p.overrides.map((o) => `${o.layer}${keyPath(p.key)}=${o.value}`).join(' ') || '-',
      ]),
    ),
  );
}

/** `trellis config set <service> <key> <value> [--profile p]`: writes one property into the service's (or profile's) layer. */
export async function configSet(
  context: Context,
  service: string,
  key: string,
  value: string,
  options: { profile?: string },
): Promise<void> {
  const layers = configLayers(service, options.profile);
  const layer = layers[layers.length - 1] as string;
  const kvKey = `${layer}${keyPath(key)}`;
  await context.kv().put(kvKey, value);
  if (context.json) return context.outJson({ key: kvKey, value: decoded(value), raw: value });
  context.out(`set ${kvKey} = ${value}\n`);
}
