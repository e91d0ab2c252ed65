import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '@trellis/core';
import { createService } from './create-service.js';

// Exit codes: 0 written, 1 failed while writing, 2 bad command line (nothing written).
const usageError = 2;
const usage = 'usage: create-service <name> [--dir <path>]   (npm init @trellis/service <name> -- --dir <path>)';
// The command line's words for the options' fields, so that a refusal names what was typed.
const flags: Readonly<Record<string, string>> = { name: '<name>', dir: '--dir' };

const program = new Command('create-service')
  .description('Writes a ready Trellis service into a new folder: a controller, its client, a test and a README.')
  .argument('<name>', 'the service name: what it registers under, and its package name')
  .option('--dir <path>', 'the folder to write it into; must be new or empty (default ./<name>)')
  .configureOutput({ outputError: () => undefined })
  .exitOverride();

function fail(line: string): never {
  process.stderr.write(`create-service: ${line}\n`);
  process.exit(usageError);
}

try {
  program.parse();
} catch (error) {
  // Commander has printed the help or the version itself.
  if (error instanceof CommanderError && error.exitCode === 0) process.exit(0);
  if (error instanceof CommanderError && error.code === 'commander.missingArgument') fail(`missing the name; ${usage}`);
  fail(error instanceof Error ? error.message.replace(/^error: /, '') : String(error));
}

const [name] = program.processedArgs as [string];
const { dir } = program.opts<{ dir?: string }>();
try {
  const created = await createService({ name, ...(dir === undefined ? {} : { dir }) });
  const where = path.relative(process.cwd(), created.dir) || '.';
  const cd = /^[\w./-]+$/.test(where) ? where : `'${where.replaceAll("'", "'\\''")}'`;
  process.stdout.write(
    [
      `Created ${name} in ${created.dir}:`,
      ...created.files.map((file) => `  ${file}`),
      '',
      'Next:',
      `  cd ${cd} && npm install && npm test`,
      '',
      'Until the Trellis packages are on the npm registry, install their tarballs first (docs/getting-started.md',
      'in the Trellis repository says how to make them):',
      `  cd ${cd} && npm install <tarball folder>/*.tgz && npm test`,
      '',
    ].join('\n'),
  );
} catch (error) {
  if (ConfigError.is(error)) fail(`${flags[error.field] ?? error.field} ${error.problem}`);
  process.stderr.write(`create-service: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
