import fs from 'node:fs/promises';
import path from 'node:path';
import type { ServiceInstance } from '@trellis/core';

const format = 'trellis-discovery-failover';

/** A view of a service as a {@link FailoverFile} keeps it. */
export interface SavedView {
  readonly service: string;
  /** When it was written, ms since the epoch. */
  readonly savedAt: number;
  readonly healthy: readonly ServiceInstance[];
  readonly unhealthy: readonly ServiceInstance[];
}

/**
 * The last view of each watched service on disk, one JSON file per service (Nacos's failover
 * file), so that a process starting while the registry is down can still call the services it
 * called before. Files are written whole to a temporary name and renamed, so a crash never
 * leaves half a file; writes for one service never overlap, and only the newest waits.
 *
 * @example
 * const file = new FailoverFile('/var/cache/forum');
 * file.save({ service: 'users', savedAt: Date.now(), healthy, unhealthy: [] });
 * const saved = await file.load('users');
 */
export class FailoverFile {
  readonly dir: string;
  readonly #pending = new Map<string, SavedView>();
  readonly #writing = new Map<string, Promise<void>>();
  readonly #onError: (error: unknown, service: string) => void;

  /** @param onError told about a write that failed (the next save tries again). */
  constructor(dir: string, onError: (error: unknown, service: string) => void = () => undefined) {
    this.dir = path.resolve(dir);
    this.#onError = onError;
  }

  /**
   * The saved view of `service`, or undefined when none was saved.
   * @throws Error naming the file when it cannot be read or is not a failover file.
   */
  async load(service: string): Promise<SavedView | undefined> {
    const file = this.#fileOf(service);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new Error(`cannot read the discovery failover file ${file}: ${String(error)}`, { cause: error });
    }
    const saved = parse(text);
    if (saved === undefined || saved.service !== service) {
      throw new Error(`not a discovery failover file of "${service}": ${file}`);
    }
    return saved;
  }

  /** Writes `view` soon; a later save of the same service before that replaces it. */
  save(view: SavedView): void {
    this.#pending.set(view.service, view);
    if (!this.#writing.has(view.service)) this.#writing.set(view.service, this.#drain(view.service));
  }

  /** Resolves once every save so far is written (or has failed). */
  async flush(): Promise<void> {
    while (this.#writing.size > 0) await Promise.all(this.#writing.values());
  }

  async #drain(service: string): Promise<void> {
    for (let view = this.#pending.get(service); view !== undefined; view = this.#pending.get(service)) {
      this.#pending.delete(service);
      const file = this.#fileOf(service);
      const temp = `${file}.${process.pid}.tmp`;
      try {
        await fs.mkdir(this.dir, { recursive: true });
        await fs.writeFile(temp, JSON.stringify({ format, version: 1, ...view }));
        await fs.rename(temp, file);
      } catch (error) {
        await fs.rm(temp, { force: true }).catch(() => undefined);
        this.#onError(error, service);
      }
    }
    this.#writing.delete(service);
  }

  #fileOf(service: string): string {
    return path.join(this.dir, `${encodeURIComponent(service)}.json`);
  }
}

function parse(text: string): SavedView | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const saved = value as Partial<SavedView> & { format?: unknown; version?: unknown };
  if (saved === null || typeof saved !== 'object' || saved.format !== format || saved.version !== 1) return undefined;
  if (typeof saved.service !== 'string' || typeof saved.savedAt !== 'number') return undefined;
  if (!isInstanceList(saved.healthy) || !isInstanceList(saved.unhealthy)) return undefined;
  return { service: saved.service, savedAt: saved.savedAt, healthy: saved.healthy, unhealthy: saved.unhealthy };
}

function isInstanceList(value: unknown): value is ServiceInstance[] {
  return (
    Array.isArray(value) &&
    value.every((i: Partial<ServiceInstance> | null) => {
      if (i === null || typeof i !== 'object') return false;
      const { id, service, address, port, tags, meta } = i;
      return (
        typeof id === 'string' &&
        typeof service === 'string' &&
        typeof address === 'string' &&
        Number.isInteger(port) &&
        Array.isArray(tags) &&
        typeof meta === 'object' &&
        meta !== null
      );
    })
  );
}
