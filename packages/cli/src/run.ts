import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { registryAddress, registryToken } from './address.js';
import { configGet, configSet } from './commands/config.js';
import { instances } from './commands/instances.js';
import { kvDelete, kvGet, kvPut } from './commands/kv.js';
import { rulesDiff, rulesDryRun, rulesGet, rulesHistory, rulesRollback, rulesSet } from './commands/rules.js';
import { services } from './commands/services.js';
import { Context, type Globals } from './context.js';
import { exitCodes, failureOf, oneLine } from './failure.js';
import type { RunIo } from './io.js';

/** Milliseconds a request to the registry may take unless `--timeout` says otherwise. */
export const defaultTimeoutMs = 10_000;

const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;

interface GlobalFlags {
  readonly registry?: string;
  readonly token?: string;
  readonly json?: boolean;
  readonly timeout: number;
}

/** A positive whole number of something, for commander. */
export function positiveInteger(what: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
      throw new InvalidArgumentError(`must be a positive whole number of ${what}.`);
    }
    return n;
  };
}

// The command whose parsing failed, for the line that says what it needs.
const failedIn = new WeakMap<CommanderError, Command>();

function nonNegativeInteger(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('must be a whole number.');
  return n;
}

/** The command that runs an action: it gets the context of the global flags, made and closed around it. */
type Action = (context: Context, ...args: never[]) => Promise<void>;

function program(io: RunIo, act: (command: Command, action: Action, args: unknown[]) => Promise<void>): Command {
  const root = new Command('trellis')
    .description('Looks at and changes a Trellis system through its registry (the Trellis registry server or Consul).')
    .version(version, '-V, --version')
    .addOption(new Option('--registry <url>', 'the registry (default $CONSUL_HTTP_ADDR, else http://127.0.0.1:8500)'))
    .addOption(new Option('--token <secret>', 'ACL token, sent as X-Consul-Token (default $CONSUL_HTTP_TOKEN)'))
    .addOption(new Option('--json', 'print machine-readable JSON on standard output'))
    .addOption(
      new Option('--timeout <ms>', 'give up on a request to the registry after this many milliseconds')
        .argParser(positiveInteger('milliseconds'))
        .default(defaultTimeoutMs),
    )
    .showSuggestionAfterError(true);

  // Every action goes through `act`, which resolves the globals and maps failures to exit codes.
  const bind =
    (action: Action) =>
    (...args: unknown[]): Promise<void> => {
      const command = args[args.length - 1] as Command;
      return act(command, action, args.slice(0, -1));
    };

  root
    .command('services')
    .description('list the registered services, their tags and how many instances are healthy')
    .action(bind(services));
  root
    .command('instances')
    .description("list a service's instances: address, health, version, zone")
    .argument('<service>', 'the service name')
    .action(bind(instances));

  const rules = root
    .command('rules')
    .description("a service's governance rules (trellis/rules/<service>): versioned, validated, reversible");
  const file = (): Option => new Option('--file <path>', 'the rules document (JSON); default standard input');
  const reason = (): Option => new Option('--reason <text>', 'why: kept with the version (required)');
  const author = (): Option => new Option('--author <name>', 'who: kept with the version (default $USER@host)');
  rules
    .command('get')
    .description('show the live rules, the dry run if any, and which instances run which version')
    .argument('<service>', 'the service the rules are about')
    .action(bind(rulesGet));
  rules
    .command('set')
    .description('validate a rules document and write it as a new version')
    .argument('<service>', 'the service the rules are about')
    .addOption(file())
    .addOption(reason())
    .addOption(author())
    .action(bind(rulesSet));
  rules
    .command('diff')
    .description('show what a rules document would change, path by path (writes nothing)')
    .argument('<service>', 'the service the rules are about')
    .addOption(file())
    .action(bind(rulesDiff));
  rules
    .command('history')
    .description('list the versions written, newest first')
    .argument('<service>', 'the service the rules are about')
    .addOption(new Option('--limit <n>', 'at most this many versions').argParser(positiveInteger('versions')))
    .action(bind(rulesHistory));
  rules
    .command('rollback')
    .description("write the previous version's rules (or --to's) again, as a new version")
    .argument('<service>', 'the service the rules are about')
    .addOption(new Option('--to <version>', 'the version to go back to').argParser(positiveInteger('a version')))
    .addOption(reason())
    .addOption(author())
    .action(bind(rulesRollback));
  rules
    .command('dry-run')
    .description('have instances evaluate a candidate beside the live rules, changing no call; --stop ends it')
    .argument('<service>', 'the service the rules are about')
    .addOption(file().conflicts('stop'))
    .addOption(reason().conflicts('stop'))
    .addOption(author().conflicts('stop'))
    .addOption(new Option('--stop', 'end the dry run'))
    .action(bind(rulesDryRun));

  const config = root
    .command('config')
    .description(
      "a service's configuration in KV: config/application/, config/<service>/, config/<service>,<profile>/",
    );
  config
    .command('get')
    .description('show the properties a service reads, and which layer each comes from')
    .argument('<service>', 'the service name')
    .argument('[key]', 'one property (a.b is the key a/b); default all')
    .option('--profile <profile>', 'include the config/<service>,<profile>/ layer, which wins')
    .action(bind(configGet));
  config
    .command('set')
    .description("write one property into the service's layer, or its profile's")
    .argument('<service>', 'the service name (application: every service)')
    .argument('<key>', 'the property, e.g. pageSize or mail.from')
    .argument('<value>', 'the value; JSON when it parses as JSON, else text')
    .option('--profile <profile>', 'write into config/<service>,<profile>/')
    .action(bind(configSet));

  const kv = root.command('kv').description("the registry's key/value store");
  kv.command('get')
    .description('print a value as stored, or with --recurse every key:value under a prefix')
    .argument('<key>', 'the key (with --recurse, a prefix)')
    .option('--recurse', 'every key under the prefix')
    .action(bind(kvGet));
  kv.command('put')
    .description('write a value (from standard input when none is given)')
    .argument('<key>', 'the key')
    .argument('[value]', 'the value; default standard input')
    .addOption(
      new Option('--cas <index>', 'write only if the key is still at this modify index (0: only if absent)').argParser(
        nonNegativeInteger,
      ),
    )
    .action(bind(kvPut));
  kv.command('delete')
    .description('delete a key, or with --recurse every key under a prefix')
    .argument('<key>', 'the key (with --recurse, a prefix)')
    .option('--recurse', 'every key under the prefix')
    .action(bind(kvDelete));

  // Commander writes through these; a failure becomes one line of ours instead (see run).
  const configure = (command: Command): void => {
    command
      .exitOverride((error) => {
        failedIn.set(error, command);
        throw error;
      })
      .configureOutput({
        writeOut: (text) => void io.stdout.write(text),
        writeErr: () => undefined,
        outputError: () => undefined,
      });
    for (const sub of command.commands) configure(sub);
  };
  configure(root);
  return root;
}

function globalsOf(command: Command, env: Readonly<Record<string, string | undefined>>): Globals {
  const flags = command.optsWithGlobals<GlobalFlags>();
  return {
    registry: registryAddress(flags.registry, env),
    token: registryToken(flags.token, env),
    json: flags.json === true,
    timeoutMs: flags.timeout,
  };
}

/**
 * Runs the `trellis` command line `argv` (without `node` and the script) with the given
 * streams and environment, and answers the exit code: 0 done, 1 the operation failed (the
 * registry unreachable, not found, a conflict), 2 bad usage or invalid input (nothing written).
 * A failure is one line on `io.stderr`, `trellis: <what failed and what to do>`.
 *
 * @example
 * const code = await run(['services', '--registry', 'http://127.0.0.1:8500'], {
 *   stdout: process.stdout,
 *   stderr: process.stderr,
 *   env: process.env,
 * });
 */
export async function run(argv: readonly string[], io: RunIo): Promise<number> {
  const env = io.env ?? {};
  let code: number = exitCodes.ok;
  let registry = '';
  const fail = (error: unknown): void => {
    const failure = failureOf(error, registry);
    io.stderr.write(`trellis: ${failure.line}\n`);
    code = failure.code;
  };
  const root = program(io, async (command, action, args) => {
    let context: Context | undefined;
    try {
      const globals = globalsOf(command, env);
      registry = globals.registry;
      context = new Context(globals, io);
      await (action as (context: Context, ...args: unknown[]) => Promise<void>)(context, ...args);
    } catch (error) {
      fail(error);
    } finally {
      await context?.close();
    }
  });
  try {
    await root.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (!(error instanceof CommanderError)) {
      fail(error);
      return code;
    }
    // --help and --version: printed on standard output.
    if (error.exitCode === 0) return exitCodes.ok;
    io.stderr.write(`trellis: ${usageLine(error, root)}\n`);
    return exitCodes.usage;
  }
  return code;
}

// Commander's complaint, as one line that says what to do.
function usageLine(error: CommanderError, root: Command): string {
  if (error.code === 'commander.help') {
    // A group called without its command (`trellis`, `trellis rules`): commander would print the help.
    const group = failedIn.get(error) ?? root;
    const names = group.commands.map((c) => c.name()).join(', ');
    const path = commandPath(group);
    return `${path} needs a command: ${names} (\`${path} --help\` says more)`;
  }
  const message = oneLine(
    error.message.replace(/^error: /, '').replace(/\s*\(Did you mean (.*)\?\)\s*$/, '; did you mean $1?'),
  );
  return `${message} (\`trellis --help\` lists the commands and flags)`;
}

function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}
