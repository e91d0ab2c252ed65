import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import { checkSeal, hasDamagedNewline, seal } from './checksum.js';
import { DataCorruptError, DataDirError, fileMode, prepareDir, syncDir, syncDirAsync, writeAll } from './data-dir.js';
import { lockDir, unlockDir } from './data-dir-lock.js';
import {
  damaged,
  mergeMeta,
  metaSchema,
  readSnapshot,
  recordProblem,
  shapeError,
  snapshotFile,
  writeSnapshot,
  writeSnapshotSync,
  type RecordSchemas,
  type SnapshotState,
} from './snapshot.js';

const fdatasync = promisify(fs.fdatasync);
const open = promisify(fs.open);
const close = promisify(fs.close);
const unlink = promisify(fs.unlink);

/** The journal is compacted into a snapshot once it grows past this many bytes: 16 MiB. */
export const defaultCompactAfterBytes = 16 * 1024 * 1024;

const journalPattern = /^journal-(\d+)\.jsonl$/;

/**
 * One part of the server's state that the journal keeps, as JSON values under string keys of
 * one `kind` (e.g. `service`, `check`, `kv`, `acl-token`). The journal never interprets the
 * values; whoever restores them does.
 */
export interface JournalSource {
  /** Names the records; unique per journal. */
  readonly kind: string;
  /** Every key held now (for snapshots). */
  keys(): Iterable<string>;
  /** The value kept now under `key` (JSON-serialisable), or undefined when it is gone. */
  read(key: string): unknown;
  /** Numbers to keep with every commit (indexes); on load each name gets its largest value. */
  meta?(): Readonly<Record<string, number>>;
}

/** What a data directory held: kind -> key -> value, and the largest of each meta number. */
export interface LoadedState {
  readonly records: ReadonlyMap<string, ReadonlyMap<string, unknown>>;
  readonly meta: Readonly<Record<string, number>>;
}

/** Options of {@link StateJournal.open}. */
export interface StateJournalOptions {
  /** The data directory; created when missing. */
  readonly dir: string;
  /** Compact into a snapshot once the journal grows past this; default {@link defaultCompactAfterBytes}. */
  readonly compactAfterBytes?: number;
  /** Told about a torn last line that was dropped, and about a failed write. Default: stderr. */
  readonly warn?: (message: string) => void;
  /**
   * The schema of the values of each kind, checked on load: a record of the wrong shape, or of
   * a kind not named, is refused with a {@link DataCorruptError} naming its file, line and field.
   * Default: none, values are not checked.
   */
  readonly schemas?: RecordSchemas;
  /** Told how long each commit's fdatasync took, in milliseconds, for the metrics. */
  readonly onSynced?: (ms: number) => void;
}

// One commit, one line: the values of the keys it changed (null for gone) and the meta numbers.
const commitSchema = z.looseObject({
  meta: metaSchema,
  records: z.array(z.tuple([z.string(), z.string(), z.unknown()])),
});

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

/**
 * A write-ahead journal of state, not of requests: owners {@link touch} the keys they changed,
 * and at the end of the event-loop turn the journal writes the current value of every touched
 * key (or its absence) as one JSON line, then fdatasyncs. Every change made while a write is in
 * flight goes into the next line, so one fsync covers any number of changes (group commit), and
 * a key changed many times between commits is written once. Records are whole values, so
 * replaying one twice is harmless, which is what makes compaction simple.
 *
 * Files in the directory: `snapshot.json` (generation N, written to a temp file, fsynced,
 * renamed, directory fsynced) and `journal-N.jsonl`, the commits after that snapshot. Each
 * line and the snapshot end with a CRC-32 of their bytes (`"crc32":"…"`). Opening loads the
 * snapshot, replays the journal (a torn last line, a commit a crash cut short, is dropped with
 * a warning: it was never acknowledged), and truncates the journal after the last whole line.
 * A record that fails its checksum or its schema is refused, and the directory left as it was.
 * Data written before checksums is read once and rewritten at once as a sealed snapshot.
 *
 * @example
 * const { journal, state } = StateJournal.open({ dir: '/var/lib/trellis' });
 * // ... restore from state.records, then:
 * journal.addSource({ kind: 'kv', keys: () => kv.keys(''), read: (key) => kv.get(key) });
 * kv.onChange(({ keys }) => keys.forEach((key) => journal.touch('kv', key)));
 * await journal.durable(); // every change so far is on disk
 */
export class StateJournal {
  readonly #dir: string;
  readonly #lock: string;
  readonly #compactAfterBytes: number;
  readonly #warn: (message: string) => void;
  readonly #onSynced: ((ms: number) => void) | undefined;
  readonly #sources = new Map<string, JournalSource>();
  readonly #dirty = new Map<string, Set<string>>();
  // What was loaded, so that compaction keeps the kinds no source took up (ACL tokens of a
  // server started without --acl) instead of dropping them.
  #loaded: ReadonlyMap<string, ReadonlyMap<string, unknown>>;
  #generation: number;
  #fd: number;
  #bytes: number;
  #commits = 0;
  #waiters: Deferred | undefined;
  #writing: Promise<void> | undefined;
  #scheduled = false;
  #failed: Error | undefined;
  #closing: Promise<void> | undefined;

  private constructor(
    dir: string,
    lock: string,
    generation: number,
    fd: number,
    bytes: number,
    loaded: ReadonlyMap<string, ReadonlyMap<string, unknown>>,
    options: StateJournalOptions,
  ) {
    this.#dir = dir;
    this.#lock = lock;
    this.#loaded = loaded;
    this.#generation = generation;
    this.#fd = fd;
    this.#bytes = bytes;
    this.#compactAfterBytes = options.compactAfterBytes ?? defaultCompactAfterBytes;
    this.#warn = options.warn ?? ((message) => process.stderr.write(`${message}\n`));
    this.#onSynced = options.onSynced;
  }

  /**
   * Opens (or creates) a data directory and loads what it holds. Synchronous: it runs once, at
   * start-up, before the server takes requests.
   * @throws DataDirError naming the path when the directory cannot be created or written, is a
   *   file, or holds a snapshot or journal that cannot be read; DataCorruptError naming the file
   *   and line when a record fails its checksum or schema. Existing data is never replaced by
   *   an empty state, and nothing is written when the data is refused.
   */
  static open(options: StateJournalOptions): { journal: StateJournal; state: LoadedState } {
    const dir = path.resolve(options.dir);
    const compact = options.compactAfterBytes;
    if (compact !== undefined && (!Number.isSafeInteger(compact) || compact < 1)) {
      throw new RangeError('compactAfterBytes must be a positive integer');
    }
    prepareDir(dir, options.warn ?? ((message) => process.stderr.write(`${message}\n`)));
    const lock = lockDir(dir);
    try {
      return StateJournal.#load(dir, lock, options);
    } catch (error) {
      fs.rmSync(lock, { force: true });
      throw error;
    }
  }

  static #load(dir: string, lock: string, options: StateJournalOptions): { journal: StateJournal; state: LoadedState } {
    const records = new Map<string, Map<string, unknown>>();
    const meta: Record<string, number> = {};
    const snapshot = readSnapshot(dir, records, meta, options.schemas);
    let generation = snapshot.generation;
    // Removed once the data is accepted: a refused start leaves the directory as it was.
    const leftovers: string[] = [];
    for (const name of fs.readdirSync(dir)) {
      const found = journalPattern.exec(name);
      const at = path.join(dir, name);
      if (found === null) {
        // A snapshot a crash cut short before its rename.
        if (name === `${snapshotFile}.tmp`) leftovers.push(at);
        continue;
      }
      const gen = Number(found[1]);
      // Compaction deletes the journal it replaced only after the new snapshot is in place.
      if (gen < generation) leftovers.push(at);
      if (gen > generation) throw new DataDirError(at, 'journal is newer than the snapshot (missing snapshot?)');
    }
    let journalPath = path.join(dir, journalName(generation));
    const warn = options.warn ?? ((message: string) => process.stderr.write(`${message}\n`));
    // Once a snapshot is sealed, so is every line written after it.
    const sealed = snapshot.generation > 0 && !snapshot.unsealed;
    const replayed = replayJournal(journalPath, records, meta, warn, sealed, options.schemas);
    let bytes = replayed.bytes;
    for (const at of leftovers) fs.rmSync(at, { force: true });
    if (snapshot.unsealed || replayed.unsealed) {
      // Written by a version without checksums: sealed now, so that no file mixes both forms.
      const next = generation + 1;
      writeSnapshotSync(dir, snapshotOf(next, records, meta));
      fs.rmSync(journalPath, { force: true });
      syncDir(dir);
      warn(`trellis-registry: rewrote the data directory ${dir} with checksums (snapshot version 2)`);
      generation = next;
      journalPath = path.join(dir, journalName(generation));
      bytes = 0;
    }
    let fd: number;
    try {
      fd = fs.openSync(journalPath, 'a', fileMode);
      syncDir(dir);
    } catch (error) {
      throw new DataDirError(journalPath, `cannot open the journal for writing (${String(error)})`, { cause: error });
    }
    const journal = new StateJournal(dir, lock, generation, fd, bytes, records, options);
    return { journal, state: { records, meta } };
  }

  /** Commits written (each one write and one fdatasync), since open. */
  get commits(): number {
    return this.#commits;
  }

  /** The current generation: the snapshot's number, raised by every compaction. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * Adds a part of the state to journal and snapshot.
   * @throws Error when a source of that kind was added already.
   */
  addSource(source: JournalSource): void {
    if (this.#sources.has(source.kind)) throw new Error(`StateJournal: a source of kind "${source.kind}" exists`);
    this.#sources.set(source.kind, source);
  }

  /**
   * Marks `key` of `kind` as changed: its value then is written with the next commit, at the
   * end of this event-loop turn or after the write in flight.
   * @throws Error for a kind no source was added for.
   */
  touch(kind: string, key: string): void {
    if (!this.#sources.has(kind)) throw new Error(`StateJournal: no source of kind "${kind}"`);
    let keys = this.#dirty.get(kind);
    if (keys === undefined) this.#dirty.set(kind, (keys = new Set()));
    keys.add(key);
    this.#schedule();
  }

  /**
   * Resolves once every change touched so far is on disk (fdatasynced).
   * @throws (rejects with) the write's error when a commit failed; from then on every call
   *   rejects, since later state can no longer be made durable.
   */
  durable(): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    if (this.#dirty.size > 0) {
      this.#schedule();
      return (this.#waiters ??= deferred()).promise;
    }
    return this.#writing === undefined ? Promise.resolve() : this.#writing.then(() => this.#throwIfFailed());
  }

  /** Commits what is pending, then closes the journal file. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      while (this.#failed === undefined && (this.#dirty.size > 0 || this.#writing !== undefined)) {
        if (this.#writing === undefined) this.#startWrite();
        await this.#writing;
      }
      await close(this.#fd);
      await unlockDir(this.#lock);
    })();
    return this.#closing;
  }

  /**
   * Closes the journal file and lets go of the lock at once, writing nothing that is pending:
   * for a server that refused the state it loaded, so that the directory is free (and as it
   * was) when its constructor throws. A journal in use is closed with {@link close}.
   * @throws the error of closing the file or of removing the lock (an AggregateError of both
   *   when both fail); the lock is removed even when closing the file failed.
   */
  abandon(): void {
    this.#dirty.clear();
    this.#closing ??= Promise.resolve();
    const errors: unknown[] = [];
    try {
      fs.closeSync(this.#fd);
    } catch (error) {
      errors.push(error);
    }
    try {
      fs.rmSync(this.#lock);
    } catch (error) {
      errors.push(error);
    }
    if (errors.length > 1) throw new AggregateError(errors, 'cannot close the journal nor remove its lock');
    if (errors.length === 1) throw errors[0];
  }

  #throwIfFailed(): void {
    if (this.#failed !== undefined) throw this.#failed;
  }

  #schedule(): void {
    if (this.#scheduled || this.#writing !== undefined || this.#failed !== undefined) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#startWrite();
    });
  }

  #startWrite(): void {
    if (this.#writing !== undefined || this.#dirty.size === 0 || this.#failed !== undefined) return;
    const waiters = this.#waiters;
    this.#waiters = undefined;
    const line = Buffer.from(`${seal(JSON.stringify(this.#capture()))}\n`, 'utf8');
    this.#writing = this.#commit(line)
      .then(
        () => waiters?.resolve(),
        (error: unknown) => {
          this.#failed = new Error(`journal write failed, state is no longer durable: ${String(error)}`, {
            cause: error,
          });
          this.#warn(`trellis-registry: ${this.#failed.message}`);
          waiters?.reject(this.#failed);
          this.#waiters?.reject(this.#failed);
        },
      )
      .finally(() => {
        this.#writing = undefined;
        if (this.#dirty.size > 0) this.#schedule();
      });
  }

  // The current values of the touched keys; clears the touched set.
  #capture(): { meta: Record<string, number>; records: Array<[string, string, unknown]> } {
    const records: Array<[string, string, unknown]> = [];
    for (const [kind, keys] of this.#dirty) {
      const source = this.#sources.get(kind);
      if (source === undefined) continue;
      for (const key of keys) records.push([kind, key, source.read(key) ?? null]);
    }
    this.#dirty.clear();
    return { meta: this.#meta(), records };
  }

  #meta(): Record<string, number> {
    const meta: Record<string, number> = {};
    for (const source of this.#sources.values()) Object.assign(meta, source.meta?.());
    return meta;
  }

  async #commit(line: Buffer): Promise<void> {
    await writeAll(this.#fd, line);
    // Real time, not the server's clock: this measures the disk.
    const started = performance.now();
    await fdatasync(this.#fd);
    this.#onSynced?.(performance.now() - started);
    this.#commits++;
    this.#bytes += line.byteLength;
    if (this.#bytes > this.#compactAfterBytes) await this.#compact();
  }

  // Runs between commits, so the snapshot holds everything committed; keys touched meanwhile
  // are written again to the new journal, which replays over the snapshot harmlessly.
  async #compact(): Promise<void> {
    const generation = this.#generation + 1;
    const records: Record<string, Record<string, unknown>> = {};
    const orphans = new Map<string, ReadonlyMap<string, unknown>>();
    for (const [kind, values] of this.#loaded) {
      if (this.#sources.has(kind)) continue;
      orphans.set(kind, values);
      records[kind] = Object.fromEntries(values);
    }
    // The rest of what was loaded lives in the stores now; no need to hold it twice.
    this.#loaded = orphans;
    for (const [kind, source] of this.#sources) {
      const values: Record<string, unknown> = {};
      for (const key of source.keys()) {
        const value = source.read(key);
        if (value !== undefined) values[key] = value;
      }
      records[kind] = values;
    }
    await writeSnapshot(this.#dir, { generation, meta: this.#meta(), records });
    const nextFd = await open(path.join(this.#dir, journalName(generation)), 'a', fileMode);
    await syncDirAsync(this.#dir);
    const oldFd = this.#fd;
    const oldGeneration = this.#generation;
    this.#fd = nextFd;
    this.#generation = generation;
    this.#bytes = 0;
    await close(oldFd);
    await unlink(path.join(this.#dir, journalName(oldGeneration)));
  }
}

function journalName(generation: number): string {
  return `journal-${generation}.jsonl`;
}

function snapshotOf(
  generation: number,
  records: ReadonlyMap<string, ReadonlyMap<string, unknown>>,
  meta: Readonly<Record<string, number>>,
): SnapshotState {
  const byKind: Record<string, Record<string, unknown>> = {};
  for (const [kind, values] of records) byKind[kind] = Object.fromEntries(values);
  return { generation, meta, records: byKind };
}

/**
 * Applies every whole line; returns the journal's length after the last one, and whether its
 * lines were written before checksums. `sealed` says they must carry one (the snapshot does).
 */
function replayJournal(
  file: string,
  records: Map<string, Map<string, unknown>>,
  meta: Record<string, number>,
  warn: (message: string) => void,
  sealed: boolean,
  schemas: RecordSchemas | undefined,
): { bytes: number; unsealed: boolean } {
  let text: Buffer;
  try {
    text = fs.readFileSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { bytes: 0, unsealed: false };
    throw new DataDirError(file, `cannot read the journal (${String(error)})`, { cause: error });
  }
  const lines: Buffer[] = [];
  let offset = 0;
  for (let end = text.indexOf(0x0a); end >= 0; end = text.indexOf(0x0a, offset)) {
    lines.push(text.subarray(offset, end));
    offset = end + 1;
  }
  const tail = text.subarray(offset);
  // A file of the old form has no checksum on any line; one checksum makes them all required,
  // so that a damaged checksum cannot pass a line off as one of the old form.
  const checks = lines.map(checkSeal);
  const oldForm = !sealed && checks.every((check) => check === 'unsealed');
  const unsealed = oldForm && lines.length > 0;
  // Parsed and checked before any is applied, so that a refused journal changes nothing.
  const commits: Array<z.infer<typeof commitSchema>> = [];
  lines.forEach((line, i) => {
    const lineNumber = i + 1;
    if (checks[i] === 'mismatch') throw new DataCorruptError(file, lineNumber, damaged('fails its checksum'));
    if (checks[i] === 'unsealed' && !oldForm) {
      throw new DataCorruptError(file, lineNumber, damaged('its checksum is missing or damaged'));
    }
    commits.push(parseCommit(file, lineNumber, line, schemas));
  });
  if (tail.byteLength > 0) {
    const lineNumber = lines.length + 1;
    // A crash cuts a commit short, leaving a prefix of its line: never fdatasynced, so never
    // acknowledged, and dropped. A whole record without its newline, or whose checksum is
    // wrong, is no prefix of what was written: damage.
    const check = checkSeal(tail);
    if (check === 'mismatch') throw new DataCorruptError(file, lineNumber, damaged('fails its checksum'));
    if (hasDamagedNewline(tail) || (!oldForm && check === 'unsealed' && isJson(tail))) {
      throw new DataCorruptError(
        file,
        lineNumber,
        damaged('the last line is whole but its checksum or newline is damaged'),
      );
    }
  }
  for (const commit of commits) applyCommit(commit, records, meta);
  if (tail.byteLength > 0) {
    warn(`trellis-registry: dropped a torn last line (line ${lines.length + 1}) of the journal ${file}`);
    try {
      fs.truncateSync(file, offset);
    } catch (error) {
      throw new DataDirError(file, `cannot truncate the torn journal (${String(error)})`, { cause: error });
    }
  }
  return { bytes: offset, unsealed };
}

function parseCommit(
  file: string,
  line: number,
  bytes: Buffer,
  schemas: RecordSchemas | undefined,
): z.infer<typeof commitSchema> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new DataCorruptError(file, line, `not JSON: ${String(error)}`);
  }
  const result = commitSchema.safeParse(parsed);
  if (!result.success) throw shapeError(file, line, result.error, []);
  result.data.records.forEach(([kind, , value], i) => {
    // null: the key is gone.
    const problem = value === null ? undefined : recordProblem(schemas, kind, value);
    if (problem !== undefined) throw shapeError(file, line, problem, ['records', i, 2]);
  });
  return result.data;
}

function applyCommit(
  commit: z.infer<typeof commitSchema>,
  records: Map<string, Map<string, unknown>>,
  meta: Record<string, number>,
): void {
  mergeMeta(meta, commit.meta);
  for (const [kind, key, value] of commit.records) {
    let values = records.get(kind);
    if (values === undefined) records.set(kind, (values = new Map<string, unknown>()));
    if (value === null || value === undefined) values.delete(key);
    else values.set(key, value);
  }
}

function isJson(bytes: Buffer): boolean {
  try {
    JSON.parse(bytes.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Nobody may be waiting when a write fails; the failure is reported by durable() anyway.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}
