import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { ConfigError } from '@trellis/core';
import { maxNameLength } from './service-definition.js';

// The node's name, datacenter and address, checked as a Consul agent checks `-node`,
// `-datacenter` and `-advertise` when it starts (agent/config/builder.go), so that a name the
// embedded server accepts a Consul cluster accepts too.

// Consul's own pattern for datacenter names.
const datacenterPattern = /^[a-z0-9_-]+$/;

// The one limit for every name and ID, so that a node registered through the catalog and
// the server's own node are held to the same length.
const maxNodeNameLength = maxNameLength;

/**
 * The node name: `value` trimmed, or the host name when it is undefined, as Consul's
 * `-node` defaults.
 * @throws ConfigError naming `nodeName` for an empty name, one over 256 characters, or one with
 *   a "/", a space or a control character (it could not be named in a URL path).
 * @example
 * nodeName('web-1'); // 'web-1'
 * nodeName(undefined); // os.hostname(), e.g. 'build-42'
 */
export function nodeName(value: string | undefined): string {
  if (value !== undefined && typeof value !== 'string') throw new ConfigError('nodeName', 'must be a string');
  // A host with no name (rare, some containers) still needs one; Consul would refuse to start.
  const name = (value ?? (hostname() || 'trellis')).trim();
  if (name === '') throw new ConfigError('nodeName', 'cannot be empty');
  if (name.length > maxNodeNameLength) {
    throw new ConfigError('nodeName', `must be at most ${maxNodeNameLength} characters; got ${name.length}`);
  }
  // eslint-disable-next-line no-control-regex -- control characters are what this refuses
  if (/[\s/\u0000-\u001f\u007f]/.test(name)) {
    throw new ConfigError('nodeName', `cannot contain "/", spaces or control characters; got ${JSON.stringify(name)}`);
  }
  return name;
}

/**
 * The datacenter: `value` lower-cased (as Consul does), default `dc1`.
 * @throws ConfigError naming `datacenter` with Consul's message when it is not `[a-z0-9-_]+`.
 * @example
 * datacenterName('EU-West'); // 'eu-west'
 */
export function datacenterName(value: string | undefined): string {
  if (value !== undefined && typeof value !== 'string') throw new ConfigError('datacenter', 'must be a string');
  const datacenter = (value ?? 'dc1').toLowerCase();
  if (datacenter === '') throw new ConfigError('datacenter', 'cannot be empty');
  if (!datacenterPattern.test(datacenter)) {
    throw new ConfigError('datacenter', `cannot be ${JSON.stringify(datacenter)}. Please use only [a-z0-9-_].`);
  }
  return datacenter;
}

/**
 * The node's address, which clients use for a service registered with no `Address`: an IPv4
 * or IPv6 address, default `127.0.0.1`.
 * @throws ConfigError naming `nodeAddress` for a value that is not an IP address, or for
 *   `0.0.0.0` / `::`, which Consul refuses too (no client can connect to them).
 * @example
 * advertiseAddress('10.0.0.7'); // '10.0.0.7'
 */
export function advertiseAddress(value: string | undefined): string {
  if (value !== undefined && typeof value !== 'string') throw new ConfigError('nodeAddress', 'must be a string');
  const address = value ?? '127.0.0.1';
  if (isIP(address) === 0) {
    throw new ConfigError('nodeAddress', `must be an IPv4 or IPv6 address; got ${JSON.stringify(address)}`);
  }
  if (isAnyAddress(address)) throw new ConfigError('nodeAddress', 'cannot be 0.0.0.0, :: or [::]');
  return address;
}

/** Whether `address` is the "any" address of IPv4 or IPv6, which binds all interfaces. */
export function isAnyAddress(address: string): boolean {
  return address === '0.0.0.0' || address === '::' || address === '[::]' || /^(0*:)+0*$/.test(address);
}
