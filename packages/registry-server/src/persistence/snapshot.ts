import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import { checkSeal, seal } from './checksum.js';
import { DataCorruptError, DataDirError, fileMode, syncDir, syncDirAsync, writeAll } from './data-dir.js';

const fsync = promisify(fs.fsync);
const open = promisify(fs.open);
const close = promisify(fs.close);
const rename = promisify(fs.rename);

/** The snapshot's file name in the data directory. */
export const snapshotFile = 'snapshot.json';
const snapshotFormat = 'trellis-registry-snapshot';
/** Version 2 is sealed with a CRC-32; version 1 (no checksum) is read once and rewritten. */
const snapshotVersion = 2;

/** The whole state at one generation: kind -> key -> value, and the meta numbers. */
export interface SnapshotState {
  readonly generation: number;
  readonly meta: Readonly<Record<string, number>>;
  readonly records: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

/** The schema of the values of each record kind, checked on load; a kind not named is refused. */
export type RecordSchemas = Readonly<Record<string, z.ZodType>>;

/** Numbers kept with every commit (indexes); finite, since JSON has no other. */
export const metaSchema = z.record(z.string(), z.number());

const snapshotSchema = z.looseObject({
  format: z.literal(snapshotFormat),
  version: z.union([z.literal(1), z.literal(snapshotVersion)]),
  generation: z.number().int().min(1),
  meta: metaSchema,
  records: z.record(z.string(), z.record(z.string(), z.unknown())),
});

/** What {@link readSnapshot} found. */
export interface SnapshotRead {
  /** 0 when there is no snapshot yet. */
  readonly generation: number;
  /** True for a snapshot written before checksums (version 1): it is to be rewritten. */
  readonly unsealed: boolean;
}

/**
 * Reads `snapshot.json` of `dir` into `records` and `meta`, after checking its checksum and the
 * shape of every record against `schemas` (when given).
 * @throws DataCorruptError naming the file (and the field) when its checksum or a record's shape
 *   is wrong; DataDirError when it cannot be read or is not a registry snapshot.
 */
export function readSnapshot(
  dir: string,
  records: Map<string, Map<string, unknown>>,
  meta: Record<string, number>,
  schemas?: RecordSchemas,
): SnapshotRead {
  const file = path.join(dir, snapshotFile);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { generation: 0, unsealed: false };
    throw new DataDirError(file, `cannot read the snapshot (${String(error)})`, { cause: error });
  }
  // The checksum first: a damaged snapshot may still parse, as other values than were written.
  const sealCheck = checkSeal(bytes);
  if (sealCheck === 'mismatch') throw new DataCorruptError(file, undefined, damaged('fails its checksum'));
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new DataCorruptError(file, undefined, `not JSON: ${String(error)}`);
  }
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    (parsed as Record<string, unknown>)['format'] !== snapshotFormat
  ) {
    throw new DataDirError(file, 'not a Trellis registry snapshot');
  }
  const version = (parsed as Record<string, unknown>)['version'];
  if (typeof version === 'number' && version > snapshotVersion) {
    throw new DataDirError(file, `a snapshot of version ${version}, written by a newer Trellis registry`);
  }
  const result = snapshotSchema.safeParse(parsed);
  if (!result.success) throw shapeError(file, undefined, result.error, []);
  const snapshot = result.data;
  if (snapshot.version === snapshotVersion && sealCheck === 'unsealed') {
    throw new DataCorruptError(file, undefined, damaged('its checksum is missing or damaged'));
  }
  Object.assign(meta, snapshot.meta);
  for (const [kind, values] of Object.entries(snapshot.records)) {
    for (const [key, value] of Object.entries(values)) {
      const problem = recordProblem(schemas, kind, value);
      if (problem !== undefined) throw shapeError(file, undefined, problem, ['records', kind, key]);
    }
    records.set(kind, new Map(Object.entries(values)));
  }
  return { generation: snapshot.generation, unsealed: snapshot.version === 1 };
}

/**
 * Writes the snapshot atomically: to `snapshot.json.tmp`, fsynced, renamed over
 * `snapshot.json`, and the directory fsynced.
 */
export async function writeSnapshot(dir: string, state: SnapshotState): Promise<void> {
  const target = path.join(dir, snapshotFile);
  const temp = `${target}.tmp`;
  const tempFd = await open(temp, 'w', fileMode);
  try {
    await writeAll(tempFd, snapshotBytes(state));
    await fsync(tempFd);
  } finally {
    await close(tempFd);
  }
  await rename(temp, target);
  await syncDirAsync(dir);
}

/** {@link writeSnapshot}, synchronously: for the rewrite of old data at start-up. */
export function writeSnapshotSync(dir: string, state: SnapshotState): void {
  const target = path.join(dir, snapshotFile);
  const temp = `${target}.tmp`;
  const tempFd = fs.openSync(temp, 'w', fileMode);
  try {
    fs.writeFileSync(tempFd, snapshotBytes(state));
    fs.fsyncSync(tempFd);
  } finally {
    fs.closeSync(tempFd);
  }
  fs.renameSync(temp, target);
  syncDir(dir);
}

function snapshotBytes(state: SnapshotState): Buffer {
  return Buffer.from(seal(JSON.stringify({ format: snapshotFormat, version: snapshotVersion, ...state })), 'utf8');
}

/** Keeps the largest value of each meta number. */
export function mergeMeta(meta: Record<string, number>, value: Readonly<Record<string, number>>): void {
  for (const [name, n] of Object.entries(value)) meta[name] = Math.max(meta[name] ?? n, n);
}

/** The problem of a damaged record, with what to do about it. */
export function damaged(problem: string): string {
  return `${problem}: the file was damaged; restore the data directory from a backup, or move the file away to start without what it holds`;
}

/** What is wrong with a record of `kind`, or undefined when its shape is right. */
export function recordProblem(
  schemas: RecordSchemas | undefined,
  kind: string,
  value: unknown,
): z.ZodError | undefined {
  if (schemas === undefined) return undefined;
  const schema = schemas[kind];
  if (schema === undefined) {
    return new z.ZodError([{ code: 'custom', path: [], message: `unknown record kind "${kind}"`, input: value }]);
  }
  const result = schema.safeParse(value);
  return result.success ? undefined : result.error;
}

/** A DataCorruptError naming the first wrong field: `at` is where the checked value sits in the file. */
export function shapeError(
  file: string,
  line: number | undefined,
  error: z.ZodError,
  at: ReadonlyArray<string | number>,
): DataCorruptError {
  const issue = error.issues[0];
  const field = [...at, ...(issue?.path ?? [])].map(String).join('.');
  return new DataCorruptError(
    file,
    line,
    `a record of the wrong shape at ${field === '' ? 'the top' : field}: ${issue?.message ?? 'invalid'}`,
    field,
  );
}
