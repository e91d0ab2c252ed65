#!/usr/bin/env node
import { isIP } from 'node:net';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigError } from '@trellis/core';
import { runAclCommand } from './acl/acl-cli.js';
import { advertiseAddress, datacenterName, isAnyAddress, nodeName } from './catalog/node-identity.js';
import { logLevels, RegistryServer, type LogLevel } from './registry-server.js';

// Exit codes: 0 clean stop, 1 failure at run time (port taken), 2 bad command line.
const usageError = 2;

interface CliOptions {
  readonly port: number;
  readonly host: string;
  readonly logLevel: LogLevel;
  readonly dataDir?: string;
  readonly dev?: boolean;
  readonly acl?: boolean;
  readonly aclInitialToken?: string;
  readonly aclDefaultPolicy: 'allow' | 'deny';
  readonly nodeName?: string;
  readonly datacenter: string;
  readonly advertise?: string;
  readonly enableScriptChecks?: boolean;
  readonly httpMaxConnsPerClient?: number;
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) {
    throw new InvalidArgumentError('must be an integer from 0 to 65535 (0 picks a free port).');
  }
  return port;
}

// The server's own check of a value, as commander's one-line "argument is invalid" error.
function checkedBy(check: (value: string) => string): (value: string) => string {
  return (value) => {
    try {
      return check(value);
    } catch (error) {
      // Commander names the flag; the option's name in code would only confuse.
      if (ConfigError.is(error))
        throw new InvalidArgumentError(error.message.replace(/^invalid configuration "[^"]*": /, ''));
      throw error;
    }
  };
}

function parseCount(value: string): number {
  const count = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(count)) {
    throw new InvalidArgumentError('must be a non-negative integer (0 turns the cap off).');
  }
  return count;
}

// `trellis-registry acl ...` talks to a running server instead of being one.
if (process.argv[2] === 'acl') process.exit(await runAclCommand(process.argv.slice(3)));

const program = new Command('trellis-registry')
  .description('The Trellis registry server: a Consul-compatible HTTP API on one machine.')
  .addOption(
    new Option('--port <port>', 'TCP port to listen on; 0 picks a free one').argParser(parsePort).default(8500),
  )
  .addOption(new Option('--host <host>', 'interface to bind').default('127.0.0.1'))
  .addOption(new Option('--log-level <level>', 'log level (logs go to stderr)').choices(logLevels).default('info'))
  .addOption(
    new Option('--data-dir <dir>', 'keep state in this directory: acknowledged writes survive a crash').conflicts(
      'dev',
    ),
  )
  .addOption(new Option('--dev', 'keep state in memory only (lost when the server stops)'))
  .addOption(new Option('--acl', 'enforce Consul-style ACL tokens (needs an initial management token)'))
  .addOption(
    // The environment keeps the secret out of `ps`; the flag wins when both are given.
    new Option('--acl-initial-token <secret>', 'secret of the initial management token').env(
      'TRELLIS_ACL_INITIAL_TOKEN',
    ),
  )
  .addOption(
    new Option('--acl-default-policy <policy>', 'rights on names no rule matches')
      .choices(['allow', 'deny'])
      .default('deny'),
  )
  .addOption(
    new Option('--node-name <name>', "the node's name, as Consul's -node; default the host name").argParser(
      checkedBy(nodeName),
    ),
  )
  .addOption(
    new Option('--datacenter <name>', 'the datacenter name, [a-z0-9-_]')
      .argParser(checkedBy(datacenterName))
      .default('dc1'),
  )
  .addOption(
    new Option(
      '--advertise <address>',
      "the node's IP address, given to clients for services registered with no Address; default --host, or 127.0.0.1 when it binds all interfaces",
    ).argParser(checkedBy(advertiseAddress)),
  )
  .addOption(
    new Option(
      '--enable-script-checks',
      'accept and run checks with Args: anyone who can register a check can then run any program as this user',
    ),
  )
  .addOption(
    new Option(
      '--http-max-conns-per-client <count>',
      "connections one client address may hold open; more are answered 429 (Consul's http_max_conns_per_client)",
    )
      .argParser(parseCount)
      .default(200),
  )
  .exitOverride();

try {
  program.parse();
} catch (error) {
  // Commander has already printed the help, or the problem with the command line.
  if (error instanceof CommanderError && error.exitCode === 0) process.exit(0);
  process.exit(usageError);
}

const options = program.opts<CliOptions>();
if (options.acl === true && (options.aclInitialToken === undefined || options.aclInitialToken === '')) {
  // With ACLs on and no management token, no request could ever be allowed.
  process.stderr.write(
    'trellis-registry: --acl needs an initial management token: pass --acl-initial-token <secret> or set TRELLIS_ACL_INITIAL_TOKEN\n',
  );
  process.exit(usageError);
}
if (options.dataDir === undefined && options.dev !== true) {
  process.stderr.write(
    'trellis-registry: state is kept in memory and lost when the server stops; pass --data-dir <dir> to keep it (or --dev to silence this)\n',
  );
}
let server: RegistryServer;
try {
  server = new RegistryServer({
    logLevel: options.logLevel,
    ...(options.httpMaxConnsPerClient === undefined ? {} : { httpMaxConnsPerClient: options.httpMaxConnsPerClient }),
    datacenter: options.datacenter,
    enableScriptChecks: options.enableScriptChecks === true,
    nodeAddress: options.advertise ?? defaultAdvertise(options.host),
    ...(options.nodeName === undefined ? {} : { nodeName: options.nodeName }),
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    ...(options.acl === true && options.aclInitialToken !== undefined
      ? {
          acl: {
            enabled: true,
            initialManagementToken: options.aclInitialToken,
            defaultPolicy: options.aclDefaultPolicy,
          },
        }
      : {}),
  });
} catch (error) {
  process.stderr.write(`trellis-registry: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
// Consul advertises the address it binds when that is one address; the "any" address, or a
// host name, says nothing a client could connect to.
function defaultAdvertise(host: string): string {
  return isIP(host) !== 0 && !isAnyAddress(host) ? host : '127.0.0.1';
}

// One close for any number of signals: a Ctrl-C can come twice (from the terminal, and passed on
// by npm when it runs the bin), and the second must not cut the first's close short.
let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
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
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The one line on stdout: launchers wait for it and read the URL (the real port for --port 0).
  process.stdout.write(`trellis-registry listening on ${url}\n`);
} catch (error) {
  process.stderr.write(`trellis-registry: cannot listen on ${options.host}:${options.port}: ${String(error)}\n`);
  process.exit(1);
}
