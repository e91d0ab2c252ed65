import { readFileSync } from 'node:fs';
import { UsageError } from './failure.js';

/** The registry's default address, as Consul's own CLI has it. */
export const defaultRegistry = 'http://127.0.0.1:8500';

/**
 * The registry to talk to: `--registry`, else `CONSUL_HTTP_ADDR`, else http://127.0.0.1:8500.
 * Like Consul's CLI, an address without a scheme (`127.0.0.1:8500`, Consul's usual form of
 * CONSUL_HTTP_ADDR) is http, or https when `CONSUL_HTTP_SSL=true`.
 *
 * @throws UsageError naming where the address came from when it is not an http(s) URL.
 * @example
 * registryAddress(undefined, { CONSUL_HTTP_ADDR: '10.0.0.5:8500' }); // "http://10.0.0.5:8500"
 */
export function registryAddress(flag: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  const fromEnv = env['CONSUL_HTTP_ADDR'];
  const [given, source] =
    flag !== undefined
      ? [flag, '--registry']
      : fromEnv !== undefined && fromEnv !== ''
        ? [fromEnv, 'CONSUL_HTTP_ADDR']
        : [defaultRegistry, 'the default'];
  const ssl = /^(1|true)$/i.test(env['CONSUL_HTTP_SSL'] ?? '');
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(given) ? given : `${ssl ? 'https' : 'http'}://${given}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`${source} "${given}" is not an address; give e.g. http://127.0.0.1:8500 or 127.0.0.1:8500`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${source} "${given}" must be an http:// or https:// address (or host:port)`);
  }
  return withScheme.replace(/\/+$/, '');
}

/**
 * The ACL token sent as X-Consul-Token: `--token`, else `CONSUL_HTTP_TOKEN`, else the file named
 * by `CONSUL_HTTP_TOKEN_FILE`; none when all are absent or empty.
 *
 * @throws UsageError when CONSUL_HTTP_TOKEN_FILE cannot be read.
 */
export function registryToken(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  if (flag !== undefined && flag !== '') return flag;
  const fromEnv = env['CONSUL_HTTP_TOKEN'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const file = env['CONSUL_HTTP_TOKEN_FILE'];
  if (file === undefined || file === '') return undefined;
  try {
    const token = readFileSync(file, 'utf8').trim();
    return token === '' ? undefined : token;
  } catch (error) {
    throw new UsageError(`CONSUL_HTTP_TOKEN_FILE "${file}" cannot be read: ${(error as Error).message}`);
  }
}
