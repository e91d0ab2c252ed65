import type { Context } from '../context.js';
import { table } from '../table.js';

/** One line of `trellis services`. */
export interface ServiceSummary {
  readonly service: string;
  readonly tags: readonly string[];
  readonly healthy: number;
  readonly total: number;
}

// Health is one query per service; a few at once keeps a big catalog quick without flooding the registry.
const parallel = 8;

/** `trellis services`: every registered service, its tags, and how many of its instances pass their checks. */
export async function services(context: Context): Promise<void> {
  const catalog = await context.catalogServices();
  const names = Object.keys(catalog).sort();
  const summaries: ServiceSummary[] = new Array<ServiceSummary>(names.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < names.length; i = next++) {
      const service = names[i] as string;
      const view = await context.registry().query(service);
      summaries[i] = {
        service,
        tags: [...(catalog[service] ?? [])].sort(),
        healthy: view.healthy.length,
        total: view.healthy.length + view.unhealthy.length,
      };
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, names.length) }, worker));
  if (context.json) return context.outJson(summaries);
  if (summaries.length === 0) return context.out(`no service is registered at ${context.globals.registry}\n`);
  context.out(
    table(
      ['SERVICE', 'HEALTHY', 'TOTAL', 'TAGS'],
      summaries.map((s) => [s.service, String(s.healthy), String(s.total), s.tags.join(',') || '-']),
    ),
  );
}
