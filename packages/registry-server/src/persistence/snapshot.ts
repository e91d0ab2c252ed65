import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { DataDirError, fileMode, isObject, syncDirAsync, writeAll } from './data-dir.js';

const fsync = promisify(fs.fsync);
const open = promisify(fs.open);
const close = promisify(fs.close);
const rename = promisify(fs.rename);

/** The snapshot's file name in the data directory. */
export const snapshotFile = 'snapshot.json';
const snapshotFormat = 'trellis-registry-snapshot';

/** The whole state at one generation: kind -> key -> value, and the meta numbers. */
export interface SnapshotState {
  readonly generation: number;
  readonly meta: Readonly<Record<string, number>>;
  readonly records: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

/**
 * Reads `snapshot.json` of `dir` into `records` and `meta`.
 * @returns the snapshot's generation, 0 when there is none yet.
 * @throws DataDirError naming the file when it cannot be read or is not a valid snapshot.
 */
export function readSnapshot(
  dir: string,
  records: Map<string, Map<string, unknown>>,
  meta: Record<string, number>,
): number {
  const file = path.join(dir, snapshotFile);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw new DataDirError(file, `cannot read the snapshot (${String(error)})`, { cause: error });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new DataDirError(file, `corrupt snapshot (${String(error)})`, { cause: error });
  }
  if (!isObject(parsed) || parsed['format'] !== snapshotFormat || parsed['version'] !== 1) {
    throw new DataDirError(file, 'not a Trellis registry snapshot of version 1');
  }
  const { generation } = parsed;
  if (typeof generation !== 'number' || !Number.isSafeInteger(generation) || generation < 1) {
    throw new DataDirError(file, 'corrupt snapshot (bad generation)');
  }
  if (!isObject(parsed['records']) || !mergeMeta(meta, parsed['meta'])) {
    throw new DataDirError(file, 'corrupt snapshot (bad records or meta)');
  }
  for (const [kind, values] of Object.entries(parsed['records'])) {
    if (!isObject(values)) throw new DataDirError(file, `corrupt snapshot (bad records of kind "${kind}")`);
    records.set(kind, new Map(Object.entries(values)));
  }
  return generation;
}

/**
 * Writes the snapshot atomically: to `snapshot.json.tmp`, fsynced, renamed over
 * `snapshot.json`, and the directory fsynced.
 */
export async function writeSnapshot(dir: string, state: SnapshotState): Promise<void> {
  const body = JSON.stringify({ format: snapshotFormat, version: 1, ...state });
  const target = path.join(dir, snapshotFile);
  const temp = `${target}.tmp`;
  const tempFd = await open(temp, 'w', fileMode);
  try {
    await writeAll(tempFd, Buffer.from(body, 'utf8'));
    await fsync(tempFd);
  } finally {
    await close(tempFd);
  }
  await rename(temp, target);
  await syncDirAsync(dir);
}

/** Keeps the largest value of each meta number; false when `value` is not a meta object. */
export function mergeMeta(meta: Record<string, number>, value: unknown): boolean {
  if (!isObject(value)) return false;
  for (const [name, n] of Object.entries(value)) {
    if (typeof n !== 'number' || !Number.isFinite(n)) return false;
    meta[name] = Math.max(meta[name] ?? n, n);
  }
  return true;
}
