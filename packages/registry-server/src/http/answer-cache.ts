import { gzipSync } from 'node:zlib';

/** One cached answer: its bytes, and the same gzipped, made on first demand. */
export interface CachedAnswer {
  readonly body: Buffer;
  gzipped(): Buffer;
}

/**
 * Answers of reads, each kept while the index it was built at is current: when a change wakes
 * a thousand blocking queries on one service, its answer is built, serialised and encoded once,
 * not a thousand times, and compressed at most once for the clients that accept gzip. Bounded:
 * past `maxEntries` distinct reads, it starts afresh.
 *
 * @example
 * const answer = cache.get(`${name}?passing`, serviceIndex, () => JSON.stringify(entries()));
 * reply.send(acceptsGzip ? answer.gzipped() : answer.body);
 */
export class AnswerCache {
  readonly #entries = new Map<string, { readonly index: number; readonly answer: CachedAnswer }>();
  readonly #maxEntries: number;

  constructor(maxEntries = 1_000) {
    this.#maxEntries = maxEntries;
  }

  /** The answer to `key` at `index`, built with `build` when it is not cached at that index. */
  get(key: string, index: number, build: () => string): CachedAnswer {
    const cached = this.#entries.get(key);
    if (cached !== undefined && cached.index === index) return cached.answer;
    const body = Buffer.from(build());
    let gzipped: Buffer | undefined;
    const answer: CachedAnswer = { body, gzipped: () => (gzipped ??= gzipSync(body)) };
    if (this.#entries.size >= this.#maxEntries && cached === undefined) this.#entries.clear();
    this.#entries.set(key, { index, answer });
    return answer;
  }
}
