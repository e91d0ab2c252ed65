import { gzipSync } from 'node:zlib';

/** One cached answer: its bytes, and the same gzipped, made on first demand. */
export interface CachedAnswer {
  readonly body: Buffer;
  gzipped(): Buffer;
}

/** Bounds of an {@link AnswerCache}. */
export interface AnswerCacheOptions {
  /** Bytes of answers (plain and gzipped, with their keys) kept at most; default 64 MiB. */
  readonly maxBytes?: number;
  /** Distinct reads kept at most; default 1,000. */
  readonly maxEntries?: number;
}

/** What an {@link AnswerCache} holds now. */
export interface AnswerCacheStats {
  readonly entries: number;
  readonly bytes: number;
}

interface Entry {
  readonly index: number;
  readonly answer: CachedAnswer;
  bytes: number;
}

// What a Map entry, its key string and the answer object cost beside the bytes themselves.
const entryOverheadBytes = 200;

/**
 * Answers of reads, each kept while the index it was built at is current: when a change wakes
 * a thousand blocking queries on one service, its answer is built, serialised and encoded once,
 * not a thousand times, and compressed at most once for the clients that accept gzip.
 *
 * Bounded by bytes as well as by count, least recently used first out, so that reads of many
 * large answers cannot grow the server's memory past `maxBytes`; an answer larger than that is
 * built for its reader and not kept. Callers normalise their keys (see {@link answerKey}), so
 * that `?tag=a&tag=a&...` or another parameter order read the entry already there.
 *
 * @example
 * const answer = cache.get(answerKey(name, passing, tags, []), serviceIndex, () => JSON.stringify(entries()));
 * reply.send(acceptsGzip ? answer.gzipped() : answer.body);
 */
export class AnswerCache {
  // In order of last use, oldest first.
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  #bytes = 0;

  constructor(options: AnswerCacheOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 1_000;
    this.#maxBytes = options.maxBytes ?? 64 * 2 ** 20;
  }

  /** Entries and bytes held now. */
  get stats(): AnswerCacheStats {
    return { entries: this.#entries.size, bytes: this.#bytes };
  }

  /** The answer to `key` at `index`, built with `build` when it is not cached at that index. */
  get(key: string, index: number, build: () => string): CachedAnswer {
    const cached = this.#entries.get(key);
    if (cached !== undefined) {
      this.#drop(key, cached);
      if (cached.index === index) {
        this.#keep(key, cached);
        return cached.answer;
      }
    }
    const body = Buffer.from(build());
    let gzipped: Buffer | undefined;
    const entry: Entry = {
      index,
      bytes: body.length + key.length * 2 + entryOverheadBytes,
      answer: {
        body,
        gzipped: () => {
          if (gzipped !== undefined) return gzipped;
          gzipped = gzipSync(body);
          if (this.#entries.get(key) === entry) {
            entry.bytes += gzipped.length;
            this.#bytes += gzipped.length;
            this.#evict();
          }
          return gzipped;
        },
      },
    };
    this.#keep(key, entry);
    return entry.answer;
  }

  #keep(key: string, entry: Entry): void {
    if (entry.bytes > this.#maxBytes) return;
    this.#entries.set(key, entry);
    this.#bytes += entry.bytes;
    this.#evict();
  }

  #drop(key: string, entry: Entry): void {
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
  }

  #evict(): void {
    for (const [key, entry] of this.#entries) {
      if (this.#bytes <= this.#maxBytes && this.#entries.size <= this.#maxEntries) return;
      this.#drop(key, entry);
    }
  }
}

/**
 * The cache key of a read: its path parameter, flags, tags and `?node-meta` filters, with the
 * tags once each and sorted, since `?tag=a&tag=b` answers the same as `?tag=b&tag=a&tag=a`,
 * and the filters as the map they make (the last value of a repeated key wins). Parameters
 * the answer does not depend on (`index`, `wait`, `stale`, ...) are not part of it.
 * @example
 * answerKey('web', true, ['v1', 'v1', 'eu'], []); // '["web",true,["eu","v1"],[]]'
 */
export function answerKey(
  name: string,
  passing: boolean,
  tags: readonly string[],
  nodeMeta: readonly string[],
): string {
  const filters = new Map<string, string>();
  for (const filter of nodeMeta) {
    const colon = filter.indexOf(':');
    filters.set(colon === -1 ? filter : filter.slice(0, colon), colon === -1 ? '' : filter.slice(colon + 1));
  }
  const meta = [...filters].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([name, passing, uniqueSorted(tags), meta]);
}

/** `values` once each, sorted: a filter's every() over them is the same, and cheaper. */
export function uniqueSorted(values: readonly string[]): string[] {
  return [...new Set(values)].sort();
}
