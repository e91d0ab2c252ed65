import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { TrellisApp } from '@trellis/app';
import { MemoryRegistry } from '@trellis/registry';
import { RegistryServer } from '@trellis/registry-server';
import { declaredSeries } from '../../metrics/test/prometheus-text.js';

// The Grafana dashboard and the alerting rules shipped with @trellis/metrics query series by
// name: a rename in the code, or a typo in a query, would leave a panel empty or an alert that
// never fires. So every series they name must be one a running service exports, and the rules
// must pass Prometheus's own checks and unit tests.
const monitoring = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../metrics/monitoring');
const run = promisify(execFile);

interface Dashboard {
  readonly panels: ReadonlyArray<{
    readonly id: number;
    readonly type: string;
    readonly title: string;
    readonly gridPos: { readonly x: number; readonly w: number };
    readonly datasource?: { readonly uid: string };
    readonly targets?: ReadonlyArray<{ readonly expr: string }>;
  }>;
  readonly templating: { readonly list: ReadonlyArray<{ readonly type: string; readonly definition?: string }> };
}

interface RuleFile {
  readonly groups: ReadonlyArray<{ readonly rules: ReadonlyArray<{ readonly alert: string; readonly expr: string }> }>;
}

const promqlWords = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
  'le',
]);

/** The series a PromQL expression (or a Grafana `label_values(...)`) reads, by name. */
function seriesNamed(expr: string): string[] {
  const bare = expr
    .replace(/\$\{?\w+\}?/g, '') // Grafana variables: $job, ${datasource}, $__rate_interval
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""') // strings
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '') // label lists
    .replace(/,\s*[a-zA-Z_]\w*\s*\)/g, ')'); // label_values(series, label): the label
  const names = new Set<string>();
  for (const match of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*(?![\w:]|\s*\()/g)) {
    const word = match[0];
    const before = bare[match.index - 1];
    if (before !== undefined && /[\w.]/.test(before)) continue; // part of a number like 1e3
    if (!promqlWords.has(word.toLowerCase())) names.add(word);
  }
  return [...names];
}

describe('the Grafana dashboard and the Prometheus alerting rules of @trellis/metrics', () => {
  const exported = new Set<string>(['up']); // `up` is Prometheus's own, one per target
  let app: TrellisApp;
  let registry: MemoryRegistry;
  let registryServer: RegistryServer;

  beforeAll(async () => {
    registry = new MemoryRegistry();
    app = new TrellisApp({ service: 'users', registry, logLevel: 'silent', drainMs: 0 });
    registryServer = new RegistryServer({ logLevel: 'silent' });
    const [{ url: appUrl }, { url: serverUrl }] = await Promise.all([
      app.start(),
      registryServer.listen({ port: 0, host: '127.0.0.1' }),
    ]);
    for (const url of [appUrl, serverUrl]) {
      // `# TYPE` lines list every series a registry holds, those with no sample yet included.
      for (const name of declaredSeries(await (await fetch(`${url}/metrics`)).text())) exported.add(name);
    }
  });
  afterAll(async () => {
    await app.close();
    await registry.close();
    await registryServer.close();
  });

  it('reads names out of PromQL, leaving out functions, labels, variables and keywords', () => {
    expect(
      seriesNamed(
        'histogram_quantile(0.99, sum by (le, route) (rate(http_client_request_duration_seconds_bucket{job=~"$job",outcome!="a b"}[$__rate_interval]))) > 1e3 or up == 0',
      ).sort(),
    ).toEqual(['http_client_request_duration_seconds_bucket', 'up']);
    expect(seriesNamed('label_values(http_server_request_duration_seconds_count{job=~"$job"}, instance)')).toEqual([
      'http_server_request_duration_seconds_count',
    ]);
  });

  it.each(['grafana-dashboard.json', 'grafana-registry-dashboard.json'])(
    '%s queries only series a TrellisApp or the registry server exports',
    (file) => {
      const dashboard = JSON.parse(readFileSync(path.join(monitoring, file), 'utf8')) as Dashboard;
      const queries = [
        ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
        ...dashboard.templating.list.flatMap((v) => (v.type === 'query' && v.definition ? [v.definition] : [])),
      ];
      expect(queries.length).toBeGreaterThan(12);
      const unknown = queries.flatMap((q) =>
        seriesNamed(q)
          .filter((name) => !exported.has(name))
          .map((n) => `${n} in ${q}`),
      );
      expect(unknown).toEqual([]);
      // Every panel has a place on Grafana's 24-column grid, its own id and the chosen data source.
      const ids = dashboard.panels.map((p) => p.id);
      expect(new Set(ids).size).toBe(ids.length);
      for (const panel of dashboard.panels) {
        expect(panel.gridPos.x + panel.gridPos.w).toBeLessThanOrEqual(24);
        if (panel.type !== 'row') expect(panel.datasource?.uid).toBe('${datasource}');
      }
    },
  );

  it('the alerting rules query only series a TrellisApp or the registry server exports', () => {
    const rules = parseYaml(readFileSync(path.join(monitoring, 'alert-rules.yml'), 'utf8')) as RuleFile;
    const exprs = rules.groups.flatMap((g) => g.rules.map((r) => r.expr));
    expect(exprs.length).toBeGreaterThanOrEqual(15);
    expect(exprs.flatMap((e) => seriesNamed(e).filter((name) => !exported.has(name)))).toEqual([]);
  });

  it('promtool accepts the rules and their unit tests pass', async () => {
    const check = await run('promtool', ['check', 'rules', 'alert-rules.yml'], { cwd: monitoring });
    expect(check.stdout).toMatch(/SUCCESS: \d+ rules found/);
    const test = await run('promtool', ['test', 'rules', 'alert-rules.test.yml'], { cwd: monitoring });
    expect(test.stdout).toMatch(/SUCCESS/);
  });
});
