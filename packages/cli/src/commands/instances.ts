import { RunningReport, type RunningState } from '@trellis/config';
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
  /**
   * The rules the instance reports running (`trellis/running/<id>`), by the service they are
   * about: its own (limits) and those of the services it calls (client); absent when it reports none.
   */
  readonly rules?: RunningState['rules'];
  /** Rules versions it refused, by service, with the field at fault. */
  readonly refused?: NonNullable<RunningState['refused']>;
}

function summary(instance: ServiceInstance, healthy: boolean, state: RunningState | undefined): InstanceSummary {
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
    ...(state === undefined ? {} : { rules: state.rules }),
    ...(state?.refused === undefined || Object.keys(state.refused).length === 0 ? {} : { refused: state.refused }),
  };
}

/** `trellis instances <service>`: its instances, their health, version and zone. */
export async function instances(context: Context, service: string): Promise<void> {
  const [view, states] = await Promise.all([
    context.registry().query(service),
    RunningReport.list(context.kv(), { service }),
  ]);
  const byInstance = new Map(states.map((state) => [state.instance, state]));
  const all = [
    ...view.healthy.map((i) => summary(i, true, byInstance.get(i.id))),
    ...view.unhealthy.map((i) => summary(i, false, byInstance.get(i.id))),
  ].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  if (all.length === 0) {
    throw new OperationError(
      `service "${service}" has no instance registered at ${context.globals.registry}; \`trellis services\` lists the services`,
    );
  }
  if (context.json) return context.outJson(all);
  context.out(
    table(
      ['ID', 'ADDRESS', 'HEALTH', 'VERSION', 'ZONE', 'RULES'],
      all.map((i) => [
        i.id,
        `${i.address.includes(':') ? `[${i.address}]` : i.address}:${i.port}`,
        i.healthy ? 'passing' : 'failing',
        i.version ?? '-',
        i.zone ?? '-',
        rulesCell(i),
      ]),
    ),
  );
}

// "users@7 (dry run 8), forum@3, mail refused 9 (client.retry.maxAttempts)"; "-" when it reports none.
function rulesCell(instance: InstanceSummary): string {
  const parts: string[] = [];
  const services = new Set([...Object.keys(instance.rules ?? {}), ...Object.keys(instance.refused ?? {})]);
  for (const service of [...services].sort()) {
    const runs = instance.rules?.[service];
    const refused = instance.refused?.[service];
    let part = `${service}@${runs?.version ?? 'defaults'}`;
    if (runs?.dryRun !== undefined) part += ` (dry run ${runs.dryRun})`;
    if (refused !== undefined) part += ` refused ${refused.version ?? '?'} (${refused.field})`;
    parts.push(part);
  }
  return parts.join(', ') || '-';
}
