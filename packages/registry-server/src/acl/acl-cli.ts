import { Command, CommanderError, Option } from 'commander';

/**
 * `trellis-registry acl rotate-token`: gives a token a new secret through
 * `PUT /v1/acl/token/<accessor>/rotate` of a running server, and prints the new secret alone on
 * stdout. The old secret is revoked at once (and, for the initial management token, stays
 * revoked when `--acl-initial-token` gives it again on a later start).
 *
 * @returns the exit code: 0 done, 1 refused by the server or unreachable, 2 bad command line.
 * @example
 * // TRELLIS_ACL_TOKEN=<old secret> trellis-registry acl rotate-token --address http://127.0.0.1:8500
 * process.exitCode = await runAclCommand(['rotate-token', '--address', 'http://127.0.0.1:8500']);
 */
export async function runAclCommand(argv: readonly string[]): Promise<number> {
  let code = 2;
  const program = new Command('trellis-registry acl').exitOverride();
  program
    .command('rotate-token')
    .description('give a token a new secret and revoke its old one; prints the new secret')
    .addOption(new Option('--address <url>', "the server's URL").default('http://127.0.0.1:8500'))
    .addOption(
      new Option('--token <secret>', 'a token with acl:write (the management token)')
        .env('TRELLIS_ACL_TOKEN')
        .makeOptionMandatory(),
    )
    .addOption(
      new Option('--accessor <id>', 'the AccessorID of the token to rotate; default the --token itself').default(
        'self',
      ),
    )
    .addOption(new Option('--new-secret <secret>', 'the new secret; default a random UUID'))
    .action(async (options: { address: string; token: string; accessor: string; newSecret?: string }) => {
      code = await rotate(options);
    });
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    // Commander has printed the help, or what is wrong with the command line.
    return error instanceof CommanderError && error.exitCode === 0 ? 0 : 2;
  }
  return code;
}

async function rotate(options: {
  address: string;
  token: string;
  accessor: string;
  newSecret?: string;
}): Promise<number> {
  const url = `${options.address.replace(/\/+$/, '')}/v1/acl/token/${encodeURIComponent(options.accessor)}/rotate`;
  try {
    const res = await fetch(url, {
      method: 'PUT',
      headers: { 'X-Consul-Token': options.token },
      ...(options.newSecret === undefined ? {} : { body: JSON.stringify({ SecretID: options.newSecret }) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (res.status !== 200) {
      process.stderr.write(`trellis-registry acl rotate-token: the server answered ${res.status}: ${text}\n`);
      return 1;
    }
    const { SecretID: secret } = JSON.parse(text) as { SecretID: string };
    process.stdout.write(`${secret}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`trellis-registry acl rotate-token: cannot reach ${options.address}: ${String(error)}\n`);
    return 1;
  }
}
