import fs from 'node:fs';
import path from 'node:path';
import { DataDirError, fileMode } from './data-dir.js';

const lockFile = 'LOCK';

/** Who holds a lock file: its pid and, where the OS tells (Linux), when that process started. */
interface LockOwner {
  readonly pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks from boot to the process's start. */
  readonly start: string | undefined;
  /** /proc/sys/kernel/random/boot_id: start times count from this boot. */
  readonly boot: string | undefined;
}

/**
 * Takes the data directory's lock file, or throws naming the process that holds it.
 *
 * Two servers appending to one journal would interleave their lines and lose writes. Node has
 * no flock() or fcntl() lock (an OS lock would need a native addon, a build step for every
 * Node version), so the lock is a file created exclusively, holding the owner's pid, the start
 * time of that process and the boot id. A pid alone is not enough: in a container the server
 * is PID 1 after every restart, so the lock a killed PID 1 left names the new PID 1, which
 * would take itself for the owner and exit, again and again. With the start time, a lock is
 * live only when a process with that pid runs and started at that time in this boot: a lock
 * of an earlier PID 1 (or any process since gone, or a pid reused) is taken over.
 *
 * Without /proc (macOS), a lock is live while a process with its pid runs.
 *
 * @returns the lock file's path, for {@link unlockDir}.
 * @throws DataDirError when a live process holds it, or it cannot be created.
 * @example
 * const lock = lockDir('/var/lib/trellis-registry');
 * // ... the server runs
 * await unlockDir(lock);
 */
export function lockDir(dir: string): string {
  const file = path.join(dir, lockFile);
  const self = ownerOf(process.pid);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, lockText(self), { flag: 'wx', mode: fileMode });
      return file;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new DataDirError(file, `cannot create the lock file (${String(error)})`, { cause: error });
      }
    }
    const owner = readLock(file);
    if (owner !== undefined && isLive(owner)) {
      throw new DataDirError(
        file,
        `in use by process ${owner.pid}${owner.pid === process.pid ? ' (this one)' : ''}; stop it, or delete the lock file if it is not a registry server`,
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

// The pid first, alone on its line, so that a reader of the old pid-only format still reads it.
function lockText(owner: LockOwner): string {
  return `${owner.pid}\n${owner.start === undefined ? '' : `start ${owner.start}\n`}${owner.boot === undefined ? '' : `boot ${owner.boot}\n`}`;
}

function readLock(file: string): LockOwner | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined; // Gone meanwhile: take it.
  }
  const [first, ...rest] = text.split('\n');
  const pid = Number(first);
  if (!Number.isSafeInteger(pid) || pid < 1) return undefined;
  const value = (name: string): string | undefined =>
    rest.find((line) => line.startsWith(`${name} `))?.slice(name.length + 1);
  return { pid, start: value('start'), boot: value('boot') };
}

function isLive(owner: LockOwner): boolean {
  const now = ownerOf(owner.pid);
  if (hasProc()) {
    // No such process; or one that started at another time, or in another boot: a reused pid.
    if (now.start === undefined) return false;
    if (owner.boot !== undefined && now.boot !== undefined && owner.boot !== now.boot) return false;
    // A lock of the old pid-only format naming this very process was left by an older
    // server that had our pid (PID 1 in a container); another pid may be a live owner.
    if (owner.start === undefined) return owner.pid !== process.pid;
    return owner.start === now.start;
  }
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function ownerOf(pid: number): LockOwner {
  return { pid, start: startTime(pid), boot: bootId() };
}

function hasProc(): boolean {
  return startTime(process.pid) !== undefined;
}

function startTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces and parentheses itself.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields from 3 (state) on; starttime is field 22.
  const start = fields[22 - 3];
  return start !== undefined && /^\d+$/.test(start) ? start : undefined;
}

let boot: string | null | undefined;

function bootId(): string | undefined {
  if (boot === undefined) {
    try {
      boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
    } catch {
      boot = null;
    }
  }
  return boot ?? undefined;
}
