import { ConfigError } from '@trellis/core';
import { AxiosTransport } from './axios-transport.js';
import type { Transport } from './transport.js';
import { UndiciTransport, type InstanceChanges } from './undici-transport.js';

/** The transports a client can make by name. */
export type TransportName = 'axios' | 'undici';

/** The service a transport made by name sends to, and where its instances change. */
export interface TransportTarget {
  readonly service: string;
  readonly changes?: InstanceChanges;
}

/**
 * The transport for `choice`: the one given, or a new one by name (default axios). An undici
 * transport made here follows `target`'s instances, closing the pools of those that leave.
 * @throws ConfigError naming `transport` for an unknown name.
 * @example
 * const transport = createTransport('undici', { service: 'users', changes: discovery });
 */
export function createTransport(choice: Transport | TransportName | undefined, target?: TransportTarget): Transport {
  if (choice === undefined || choice === 'axios') return new AxiosTransport();
  if (choice === 'undici') {
    const transport = new UndiciTransport();
    if (target?.changes !== undefined) transport.watch(target.service, target.changes);
    return transport;
  }
  if (typeof choice === 'string') {
    throw new ConfigError('transport', `unknown transport "${String(choice)}"; use "axios", "undici" or a Transport`);
  }
  return choice;
}
