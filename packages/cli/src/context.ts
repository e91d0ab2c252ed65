import { types } from 'node:util';
import Consul from 'consul';
import { RegistryRejectedError, RegistryUnavailableError } from '@trellis/core';
import { ConsulKv } from '@trellis/config';
import { ConsulRegistry } from '@trellis/registry';
import type { RunIo } from './io.js';

/** The global options, resolved: what every command talks to and how it prints. */
export interface Globals {
  readonly registry: string;
  readonly token: string | undefined;
  readonly json: boolean;
  readonly timeoutMs: number;
}

/**
 * What a command runs with: the resolved globals, the streams, and the registry clients,
 * made on first use and closed once the command is done.
 */
export class Context {
  readonly globals: Globals;
  readonly io: RunIo;
  #registry: ConsulRegistry | undefined;
  #consul: Consul | undefined;
  #kv: ConsulKv | undefined;

  constructor(globals: Globals, io: RunIo) {
    this.globals = globals;
    this.io = io;
  }

  get json(): boolean {
    return this.globals.json;
  }

  /** Writes text to standard output. */
  out(text: string): void {
    this.io.stdout.write(text);
  }

  /** Writes a value as indented JSON and a newline: the `--json` output. */
  outJson(value: unknown): void {
    this.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** @trellis/registry's client of the registry, for instances and their health. */
  registry(): ConsulRegistry {
    this.#registry ??= new ConsulRegistry({
      url: this.globals.registry,
      timeoutMs: this.globals.timeoutMs,
      ...(this.globals.token === undefined ? {} : { token: this.globals.token }),
    });
    return this.#registry;
  }

  /** @trellis/config's client of the registry's KV, for rules, configuration and keys. */
  kv(): ConsulKv {
    this.#kv ??= new ConsulKv({
      url: this.globals.registry,
      timeoutMs: this.globals.timeoutMs,
      ...(this.globals.token === undefined ? {} : { token: this.globals.token }),
    });
    return this.#kv;
  }

  /**
   * The names and tags of every registered service (`GET /v1/catalog/services`), which
   * @trellis/registry does not offer, through the same `consul` client and with its errors.
   */
  async catalogServices(): Promise<Record<string, string[]>> {
    if (this.#consul === undefined) {
      const url = new URL(this.globals.registry);
      this.#consul = new Consul({
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
        secure: url.protocol === 'https:',
        ...(this.globals.token === undefined ? {} : { defaults: { token: this.globals.token } }),
      });
    }
    const consul = this.#consul;
    // The client's typings omit the per-request timeout, which it honours.
    const options = { timeout: this.globals.timeoutMs } as { token?: string };
    try {
      const answer: unknown = await consul.catalog.service.list(options);
      // Errors from another realm (Jest's VM modules) come back resolved, not thrown.
      if (types.isNativeError(answer)) throw answer;
      return (answer ?? {}) as Record<string, string[]>;
    } catch (error) {
      const status = (error as { statusCode?: unknown }).statusCode;
      if (typeof status === 'number') {
        const reason = error instanceof Error ? error.message.replace(/^consul: /, '') : String(error);
        throw new RegistryRejectedError('the catalog of services', status, reason);
      }
      throw new RegistryUnavailableError(this.globals.registry, error);
    }
  }

  /** Closes the clients made. */
  async close(): Promise<void> {
    await this.#registry?.close();
    await this.#kv?.close();
    this.#consul?.destroy();
  }
}
