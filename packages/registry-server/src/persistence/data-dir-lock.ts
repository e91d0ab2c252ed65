import fs from 'node:fs';
import path from 'node:path';
import { DataDirError } from './data-dir.js';

const lockFile = 'LOCK';

// Two servers appending to one journal would interleave their lines and lose writes. Node has
// no flock(), so the lock is a file holding the owner's pid, created exclusively; one left by a
// process that no longer runs (kill -9) is taken over.
/**
 * Takes the data directory's lock file, or throws naming the process that holds it.
 * @returns the lock file's path, for {@link unlockDir}.
 * @throws DataDirError when a live process holds it, or it cannot be created.
 */
export function lockDir(dir: string): string {
  const file = path.join(dir, lockFile);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return file;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new DataDirError(file, `cannot create the lock file (${String(error)})`, { cause: error });
      }
    }
    const owner = Number.parseInt(fs.readFileSync(file, 'utf8'), 10);
    if (Number.isSafeInteger(owner) && owner > 0 && isRunning(owner)) {
      throw new DataDirError(
        file,
        `in use by process ${owner}${owner === process.pid ? ' (this one)' : ''}; stop it, or delete the lock file if it is not a registry server`,
      );
    }
    fs.rmSync(file, { force: true });
  }
  throw new DataDirError(file, 'another process keeps taking the lock file');
}

/** Gives the lock back (the server closed). */
export function unlockDir(file: string): Promise<void> {
  return fs.promises.unlink(file);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
