import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { TrellisError, type ErrorCode } from '@trellis/core';

const write = promisify(fs.write);
const fsync = promisify(fs.fsync);
const open = promisify(fs.open);
const close = promisify(fs.close);

/**
 * A data directory that cannot be used: not a directory, not writable, locked by another
 * server, or holding a snapshot or journal that cannot be read. `path` names the file or
 * directory at fault. Code `DATA_DIR_UNUSABLE`; a damaged file is the subclass
 * {@link DataCorruptError}, code `DATA_CORRUPT`.
 * @example
 * try { new RegistryServer({ dataDir: '/var/lib/trellis-registry' }); }
 * catch (e) { if (DataDirError.is(e)) console.error(`cannot use ${e.path}: ${e.message}`); throw e; }
 */
export class DataDirError extends TrellisError {
  readonly path: string;

  constructor(filePath: string, message: string, options?: ErrorOptions) {
    // The subclass's code, chosen here since TrellisError takes it once, in its constructor.
    const code: ErrorCode = (new.target as unknown) === DataCorruptError ? 'DATA_CORRUPT' : 'DATA_DIR_UNUSABLE';
    super(code, `data directory: ${message}: ${filePath}`, { cause: options?.cause });
    this.path = filePath;
  }

  /** True for this error or a {@link DataCorruptError}, from this copy of the package or another. */
  static override is(error: unknown): error is DataDirError {
    return TrellisError.hasCode(error, 'DATA_DIR_UNUSABLE') || TrellisError.hasCode(error, 'DATA_CORRUPT');
  }
}

/**
 * A snapshot or journal record that fails its checksum or does not have the shape the server
 * writes: the file was damaged (a disk error, a hand edit), so the server refuses to start
 * rather than serve another value than was written. Nothing in the directory is changed.
 * `path` names the file, `line` the journal line (undefined for the snapshot), and `field`
 * the part of the record that is wrong, when its shape is (`records.service.web-1.def.port`).
 * Code `DATA_CORRUPT`.
 * @example
 * try { new RegistryServer({ dataDir: '/var/lib/trellis-registry' }); }
 * catch (e) { if (DataCorruptError.is(e)) console.error(`restore ${e.path} from a backup`); throw e; }
 */
export class DataCorruptError extends DataDirError {
  /** The journal's line, from 1; undefined for the snapshot. */
  readonly line: number | undefined;
  /** Where in the record the shape is wrong; undefined for a checksum mismatch. */
  readonly field: string | undefined;

  constructor(filePath: string, line: number | undefined, problem: string, field?: string) {
    super(filePath, `corrupt ${line === undefined ? 'snapshot' : `journal at line ${line}`} (${problem})`);
    this.line = line;
    this.field = field;
  }

  static override is(error: unknown): error is DataCorruptError {
    return TrellisError.hasCode(error, 'DATA_CORRUPT');
  }
}

/** The data directory's mode: only its owner may list or enter it; it holds every ACL secret. */
export const dirMode = 0o700;
/** The mode of every file in it: read and written by the owner only. */
export const fileMode = 0o600;

/**
 * Creates the data directory when missing (mode 0700), checks that it is a directory we may
 * write, and tightens a directory or files in it that others may read to 0700 / 0600, telling
 * `warn` what it changed: the journal and snapshot hold every ACL secret in plain text.
 */
export function prepareDir(dir: string, warn: (message: string) => void): void {
  let stat: fs.Stats | undefined;
  try {
    stat = fs.statSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new DataDirError(dir, `cannot read (${String(error)})`, { cause: error });
    }
  }
  if (stat !== undefined && !stat.isDirectory()) throw new DataDirError(dir, 'not a directory');
  try {
    if (stat === undefined) fs.mkdirSync(dir, { recursive: true, mode: dirMode });
    fs.accessSync(dir, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
  } catch (error) {
    throw new DataDirError(dir, `cannot create or write (${String(error)})`, { cause: error });
  }
  tighten(dir, dirMode, warn);
  for (const name of fs.readdirSync(dir)) {
    const file = path.join(dir, name);
    if (fs.lstatSync(file).isFile()) tighten(file, fileMode, warn);
  }
}

// Only group and other bits are taken away; a failure (not the owner) is told, not fatal.
function tighten(file: string, mode: number, warn: (message: string) => void): void {
  const current = fs.statSync(file).mode & 0o777;
  if ((current & 0o077) === 0) return;
  try {
    fs.chmodSync(file, current & mode);
    warn(
      `trellis-registry: ${file} was readable by others (mode ${current.toString(8)}); changed to ${(current & mode).toString(8)}`,
    );
  } catch (error) {
    warn(
      `trellis-registry: ${file} is readable by others (mode ${current.toString(8)}) and cannot be changed: ${String(error)}`,
    );
  }
}

/** Writes the whole buffer at the file's position (append for an `a` fd). */
export async function writeAll(fd: number, buffer: Buffer): Promise<void> {
  let done = 0;
  while (done < buffer.byteLength) {
    const { bytesWritten } = await write(fd, buffer, done, buffer.byteLength - done, null);
    done += bytesWritten;
  }
}

// A new or renamed file survives a crash only once its directory entry is synced too.
export function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export async function syncDirAsync(dir: string): Promise<void> {
  const fd = await open(dir, 'r');
  try {
    await fsync(fd);
  } finally {
    await close(fd);
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
