import { ConfigError } from '@trellis/core';
import { ConsulRegistry } from './consul-registry.js';
import { EtcdRegistry } from './etcd-registry.js';
import type { Registry } from './registry.js';

/** What {@link registryFromUrl} may add to the address. */
export interface RegistryUrlOptions {
  /** ACL token for a Consul-speaking registry (`X-Consul-Token`). */
  readonly token?: string;
  /** The setting the URL came from, named in errors; default `registryUrl`. */
  readonly field?: string;
}

/** A registry address, read: a Consul-speaking registry, or the members of an etcd cluster. */
export type RegistryAddress =
  | { readonly kind: 'consul'; readonly url: string }
  | {
      readonly kind: 'etcd';
      readonly endpoints: readonly string[];
      readonly auth?: { readonly username: string; readonly password: string };
    };

/**
 * The registry an address names: `http://` or `https://` is the Trellis registry server or a
 * Consul agent ({@link ConsulRegistry}); `etcd://host:port[,host:port...]` (`etcds://` for TLS
 * with the system's roots), with `user:password@` when etcd's authentication is on, is an etcd
 * cluster ({@link EtcdRegistry}).
 *
 * @throws ConfigError naming `field` when the address is neither.
 * @example
 * const registry = registryFromUrl('etcd://127.0.0.1:2379,127.0.0.1:22379');
 */
export function registryFromUrl(url: string, options: RegistryUrlOptions = {}): Registry {
  const address = parseRegistryUrl(url, options.field);
  if (address.kind === 'etcd') {
    return new EtcdRegistry({
      endpoints: address.endpoints,
      ...(address.auth === undefined ? {} : { auth: address.auth }),
    });
  }
  return new ConsulRegistry({ url: address.url, ...(options.token === undefined ? {} : { token: options.token }) });
}

/**
 * Reads a registry address without connecting (see {@link registryFromUrl}).
 * @throws ConfigError naming `field` (default `registryUrl`) when it is malformed.
 * @example
 * parseRegistryUrl('etcd://a:2379,b:2379'); // { kind: 'etcd', endpoints: ['http://a:2379', 'http://b:2379'] }
 */
export function parseRegistryUrl(url: string, field = 'registryUrl'): RegistryAddress {
  const etcd = /^(etcds?):\/\/(?:([^@/]*)@)?([^/?#]+)\/?$/i.exec(url);
  if (etcd !== null) {
    const [, scheme = 'etcd', userinfo, hosts = ''] = etcd;
    const protocol = scheme.toLowerCase() === 'etcds' ? 'https' : 'http';
    const endpoints = hosts.split(',').map((host) => {
      if (!/^([^:,[\]\s]+|\[[0-9a-f:.]+\]):\d{1,5}$/i.test(host)) {
        throw new ConfigError(field, `"${host}" in ${url} is not host:port`);
      }
      return `${protocol}://${host}`;
    });
    return userinfo === undefined
      ? { kind: 'etcd', endpoints }
      : { kind: 'etcd', endpoints, auth: credentials(userinfo, field) };
  }
  if (URL.canParse(url)) {
    const parsed = new URL(url);
    if ((parsed.protocol === 'http:' || parsed.protocol === 'https:') && parsed.hostname !== '') {
      return { kind: 'consul', url };
    }
  }
  throw new ConfigError(
    field,
    `"${url}" must be an http(s):// URL with a host (the registry server or Consul) or etcd://host:port[,host:port...]`,
  );
}

function credentials(userinfo: string, field: string): { username: string; password: string } {
  const colon = userinfo.indexOf(':');
  if (colon <= 0) throw new ConfigError(field, 'etcd credentials must be user:password@');
  return {
    username: decodeURIComponent(userinfo.slice(0, colon)),
    password: decodeURIComponent(userinfo.slice(colon + 1)),
  };
}
