import fs from 'node:fs';
import { promisify } from 'node:util';

const write = promisify(fs.write);
const fsync = promisify(fs.fsync);
const open = promisify(fs.open);
const close = promisify(fs.close);

/**
 * A data directory that cannot be used: not a directory, not writable, or holding a snapshot
 * or journal that cannot be read. `path` names the file or directory at fault.
 */
export class DataDirError extends Error {
  readonly path: string;

  constructor(filePath: string, message: string, options?: ErrorOptions) {
    super(`data directory: ${message}: ${filePath}`, options);
    this.name = 'DataDirError';
    this.path = filePath;
  }
}

/** Creates the data directory when missing, and checks that it is a directory we may write. */
export function prepareDir(dir: string): void {
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
    if (stat === undefined) fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
  } catch (error) {
    throw new DataDirError(dir, `cannot create or write (${String(error)})`, { cause: error });
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
