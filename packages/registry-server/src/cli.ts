#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { logLevels, RegistryServer, type LogLevel } from './registry-server.js';

// Exit codes: 0 clean stop, 1 failure at run time (port taken), 2 bad command line.
const usageError = 2;

interface CliOptions {
  readonly port: number;
  readonly host: string;
  readonly logLevel: LogLevel;
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) {
    throw new InvalidArgumentError('must be an integer from 0 to 65535 (0 picks a free port).');
  }
  return port;
}

const program = new Command('trellis-registry')
  .description('The Trellis registry server: a Consul-compatible HTTP API on one machine.')
  .addOption(
    new Option('--port <port>', 'TCP port to listen on; 0 picks a free one').argParser(parsePort).default(8500),
  )
  .addOption(new Option('--host <host>', 'interface to bind').default('127.0.0.1'))
  .addOption(new Option('--log-level <level>', 'log level (logs go to stderr)').choices(logLevels).default('info'))
  .exitOverride();

try {
  program.parse();
} catch (error) {
  // Commander has already printed the help, or the problem with the command line.
  if (error instanceof CommanderError && error.exitCode === 0) process.exit(0);
  process.exit(usageError);
}

const options = program.opts<CliOptions>();
const server = new RegistryServer({ logLevel: options.logLevel });
const stop = (): void => {
  server.close().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`trellis-registry: error while closing: ${String(error)}\n`);
      process.exit(1);
    },
  );
};
try {
  const { url } = await server.listen({ port: options.port, host: options.host });
  // Before the line goes out: whoever reads it may signal at once.
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // The one line on stdout: launchers wait for it and read the URL (the real port for --port 0).
  process.stdout.write(`trellis-registry listening on ${url}\n`);
} catch (error) {
  process.stderr.write(`trellis-registry: cannot listen on ${options.host}:${options.port}: ${String(error)}\n`);
  process.exit(1);
}
