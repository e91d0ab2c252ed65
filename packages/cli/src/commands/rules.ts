import { hostname, userInfo } from 'node:os';
import { RuleStore, RunningReport, type RulesEnvelope } from '@trellis/config';
import { ConfigError } from '@trellis/core';
import type { Context } from '../context.js';
import { OperationError, UsageError } from '../failure.js';
import { parseJson, readInput, sourceName } from '../io.js';
import { fields, table } from '../table.js';
import { rulesValidator, type RulesValidator } from '../validate.js';

// The keys (documented with @trellis/config's RuleStore): trellis/rules/<service> the live
// rules, trellis/rules-history/<service>/<version> every version, trellis/rules-dry-run/<service>
// a candidate evaluated beside the live ones, trellis/running/<instance> what each runs.

interface InputOptions {
  readonly file?: string;
}

interface WriteOptions extends InputOptions {
  readonly reason?: string;
  readonly author?: string;
}

/** Who runs which version of a service's rules: an instance of a caller, or of the service itself. */
export interface RunningRow {
  readonly instance: string;
  readonly service: string;
  readonly version?: number;
  readonly dryRun?: number;
  readonly refused?: { readonly version?: number; readonly field: string; readonly problem: string };
}

function store(context: Context, validate: RulesValidator): RuleStore<unknown> {
  return new RuleStore<unknown>({ kv: context.kv(), validate });
}

/** `$USER@host`, the author unless --author says otherwise. */
function defaultAuthor(env: Readonly<Record<string, string | undefined>>): string {
  let user = env['USER'] ?? env['LOGNAME'] ?? env['USERNAME'];
  if (user === undefined || user === '') {
    try {
      user = userInfo().username;
    } catch {
      user = 'unknown';
    }
  }
  return `${user}@${hostname()}`;
}

function meta(context: Context, options: WriteOptions, command: string): { author: string; reason: string } {
  const reason = options.reason?.trim();
  if (reason === undefined || reason === '') {
    throw new UsageError(`${command} needs --reason <text>: every version says why it was made`);
  }
  const author = options.author?.trim();
  return { author: author === undefined || author === '' ? defaultAuthor(context.io.env ?? {}) : author, reason };
}

/** The rules document of --file or standard input, checked: a refusal names the dotted field, and nothing is written. */
async function candidate(
  context: Context,
  service: string,
  options: InputOptions,
): Promise<{ rules: unknown; validate: RulesValidator }> {
  const source = sourceName(options.file);
  const document = parseJson(await readInput(options.file, context.io.stdin, 'the rules'), `the rules in ${source}`);
  const validate = await rulesValidator(document);
  try {
    return { rules: validate(document), validate };
  } catch (error) {
    if (ConfigError.is(error)) throw invalid(service, error);
    throw error;
  }
}

function invalid(service: string, error: ConfigError): UsageError {
  return new UsageError(`invalid rules for ${service}: ${error.field}: ${error.problem}; nothing was written`);
}

// The store validates again before writing; its refusal reads like ours.
async function writing<T>(service: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if (ConfigError.is(error)) throw invalid(service, error);
    throw error;
  }
}

/** Every instance running (or refusing, or dry-running) a version of `service`'s rules: one query. */
async function running(context: Context, service: string): Promise<RunningRow[]> {
  const states = await RunningReport.list(context.kv());
  const rows: RunningRow[] = [];
  for (const state of states) {
    const runs = state.rules[service];
    const refused = state.refused?.[service];
    if (runs === undefined && refused === undefined) continue;
    rows.push({
      instance: state.instance,
      service: state.service,
      ...(runs?.version === undefined ? {} : { version: runs.version }),
      ...(runs?.dryRun === undefined ? {} : { dryRun: runs.dryRun }),
      ...(refused === undefined ? {} : { refused }),
    });
  }
  return rows.sort((x, y) => (x.instance < y.instance ? -1 : x.instance > y.instance ? 1 : 0));
}

function notFound(context: Context, service: string): OperationError {
  return new OperationError(
    `service "${service}" has no rules at ${context.globals.registry} (trellis/rules/${service}); write some with \`trellis rules set ${service} --file <rules.json> --reason <why>\``,
  );
}

function envelopeFields(envelope: RulesEnvelope<unknown>): (readonly [string, string])[] {
  return [
    ['version', String(envelope.version)],
    ['author', envelope.author],
    ['reason', envelope.reason],
    ['time', envelope.time],
  ];
}

/** `trellis rules get <service>`: the live envelope, the dry run if any, and who runs which version. */
export async function rulesGet(context: Context, service: string): Promise<void> {
  const rules = store(context, (input) => input);
  const [live, dryRun, runs] = await Promise.all([
    rules.get(service),
    rules.getDryRun(service),
    running(context, service),
  ]);
  if (live === undefined && dryRun === undefined) throw notFound(context, service);
  if (context.json) return context.outJson({ service, live: live ?? null, dryRun: dryRun ?? null, running: runs });
  let text = '';
  if (live === undefined) text += `service ${service} has no live rules (the code's defaults apply)\n`;
  else text += fields([['service', service], ...envelopeFields(live)]) + `rules:\n${indent(live.rules)}`;
  if (dryRun !== undefined) {
    text += `\ndry run (evaluated beside the live rules, changing no call):\n`;
    text += fields(envelopeFields(dryRun)) + `rules:\n${indent(dryRun.rules)}`;
  }
  text += '\n';
  text +=
    runs.length === 0
      ? 'running: no instance reports running these rules\n'
      : `running:\n${table(['INSTANCE', 'SERVICE', 'VERSION', 'DRY-RUN', 'REFUSED'], runs.map(runningCells))}`;
  context.out(text);
}

function runningCells(row: RunningRow): string[] {
  return [
    row.instance,
    row.service,
    row.version === undefined ? '-' : String(row.version),
    row.dryRun === undefined ? '-' : String(row.dryRun),
    row.refused === undefined
      ? '-'
      : `${row.refused.version === undefined ? '' : `version ${row.refused.version}: `}${row.refused.field}: ${row.refused.problem}`,
  ];
}

function indent(value: unknown): string {
  return `${JSON.stringify(value, null, 2)
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n')}\n`;
}

/** `trellis rules set <service> --file <path> --reason <text> [--author <name>]`: validated, then written as a new version. */
export async function rulesSet(context: Context, service: string, options: WriteOptions): Promise<void> {
  const by = meta(context, options, 'rules set');
  const { rules, validate } = await candidate(context, service, options);
  const envelope = await writing(service, () => store(context, validate).set(service, rules, by));
  if (context.json) return context.outJson(envelope);
  context.out(`${service}: rules version ${envelope.version} written (${envelope.author}: ${envelope.reason})\n`);
}

/** `trellis rules diff <service> --file <path>`: what would change, path by path, before → after. */
export async function rulesDiff(context: Context, service: string, options: InputOptions): Promise<void> {
  const { rules, validate } = await candidate(context, service, options);
  const changes = await store(context, validate).diff(service, rules);
  if (context.json) return context.outJson(changes);
  if (changes.length === 0) return context.out(`no change to the live rules of ${service}\n`);
  context.out(
    table(
      ['PATH', 'BEFORE', 'AFTER'],
      changes.map((change) => [change.path, shown(change.before), shown(change.after)]),
    ),
  );
}

function shown(value: unknown): string {
  return value === undefined ? '-' : JSON.stringify(value);
}

/** `trellis rules history <service> [--limit n]`: the versions, newest first. */
export async function rulesHistory(context: Context, service: string, options: { limit?: number }): Promise<void> {
  const versions = await store(context, (input) => input).history(
    service,
    options.limit === undefined ? {} : { limit: options.limit },
  );
  if (versions.length === 0) throw notFound(context, service);
  if (context.json) return context.outJson(versions);
  context.out(
    table(
      ['VERSION', 'TIME', 'AUTHOR', 'REASON'],
      versions.map((v) => [String(v.version), v.time, v.author, v.reason]),
    ),
  );
}

/** `trellis rules rollback <service> --reason <text> [--to <version>]`: an earlier version's rules, written as a new version. */
export async function rulesRollback(
  context: Context,
  service: string,
  options: WriteOptions & { to?: number },
): Promise<void> {
  const by = meta(context, options, 'rules rollback');
  const validate = await rulesValidator(undefined);
  const envelope = await writing(service, async () => {
    try {
      return await store(context, validate).rollback(
        service,
        by,
        options.to === undefined ? {} : { toVersion: options.to },
      );
    } catch (error) {
      // No earlier version (or not the one asked for) is kept: nothing to go back to.
      if (ConfigError.is(error) && error.field === 'toVersion')
        throw new OperationError(`${error.problem}; nothing was written`);
      throw error;
    }
  });
  if (context.json) return context.outJson(envelope);
  context.out(
    `${service}: rolled back${options.to === undefined ? '' : ` to version ${options.to}`}; the live rules are version ${envelope.version} (${envelope.author}: ${envelope.reason})\n`,
  );
}

/** `trellis rules dry-run <service> --file <path> --reason <text>`, or `--stop`. */
export async function rulesDryRun(
  context: Context,
  service: string,
  options: WriteOptions & { stop?: boolean },
): Promise<void> {
  if (options.stop === true) {
    if (options.file !== undefined) throw new UsageError('rules dry-run --stop takes no --file: it ends the dry run');
    await store(context, (input) => input).clearDryRun(service);
    if (context.json) return context.outJson({ service, dryRun: null });
    return context.out(`${service}: dry run stopped\n`);
  }
  const by = meta(context, options, 'rules dry-run');
  const { rules, validate } = await candidate(context, service, options);
  const envelope = await writing(service, () => store(context, validate).setDryRun(service, rules, by));
  if (context.json) return context.outJson(envelope);
  context.out(
    `${service}: dry run of candidate version ${envelope.version} started; instances evaluate it beside the live rules and report what it would do (stop with \`trellis rules dry-run ${service} --stop\`)\n`,
  );
}
