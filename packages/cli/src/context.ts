import { ConsulKv } from '@trellis/config';
import { ConsulRegistry, connectConsul, sendToConsul, type ConsulConnection } from '@trellis/registry';
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
  #consul: ConsulConnection | undefined;
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
    const { consul, url, timeoutMs } = (this.#consul ??= connectConsul({
      url: this.globals.registry,
      timeoutMs: this.globals.timeoutMs,
      ...(this.globals.token === undefined ? {} : { token: this.globals.token }),
    }));
    // The client's typings omit the per-request timeout, which it honours.
    const answer = await sendToConsul(url, 'the catalog of services', () =>
      consul.catalog.service.list({ timeout: timeoutMs } as { token?: string }),
    );
    return answer ?? {};
  }

  /** Closes the clients made. */
  async close(): Promise<void> {
    await this.#registry?.close();
    await this.#kv?.close();
    this.#consul?.consul.destroy();
  }
}
