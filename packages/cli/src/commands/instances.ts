import type { ServiceInstance } from '@trellis/core';
import type { Context } from '../context.js';
import { OperationError } from '../failure.js';
import { table } from '../table.js';

/** One line of `trellis instances <service>`. */
export interface InstanceSummary {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  /** Every check of the instance passes. */
  readonly healthy: boolean;
  readonly version?: string;
  readonly zone?: string;
  readonly weight: number;
  readonly tags: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
}

function summary(instance: ServiceInstance, healthy: boolean): InstanceSummary {
  return {
    id: instance.id,
    address: instance.address,
    port: instance.port,
    healthy,
    ...(instance.meta.version === undefined ? {} : { version: instance.meta.version }),
    ...(instance.meta.zone === undefined ? {} : { zone: instance.meta.zone }),
    weight: instance.meta.weight,
    tags: instance.tags,
    labels: instance.meta.labels,
  };
}

/** `trellis instances <service>`: its instances, their health, version and zone. */
export async function instances(context: Context, service: string): Promise<void> {
  const view = await context.registry().query(service);
  const all = [...view.healthy.map((i) => summary(i, true)), ...view.unhealthy.map((i) => summary(i, false))].sort(
    (x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0),
  );
  if (all.length === 0) {
    throw new OperationError(
      `service "${service}" has no instance registered at ${context.globals.registry}; \`trellis services\` lists the services`,
    );
  }
  if (context.json) return context.outJson(all);
  context.out(
    table(
      ['ID', 'ADDRESS', 'HEALTH', 'VERSION', 'ZONE'],
      all.map((i) => [
        i.id,
        `${i.address.includes(':') ? `[${i.address}]` : i.address}:${i.port}`,
        i.healthy ? 'passing' : 'failing',
        i.version ?? '-',
        i.zone ?? '-',
      ]),
    ),
  );
}
