import { readdirSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';

// Processes that are not our children, seen through /proc (Linux): a launcher's children, or the
// server below `npx` and its shell. Node gives no event when such a process ends.

interface Stat {
  readonly state: string;
  readonly ppid: number;
}

function statOf(pid: number): Stat | undefined {
  try {
    // The fields after the command's closing parenthesis: state, then the parent's pid.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state = '', ppid = ''] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state, ppid: Number(ppid) };
  } catch {
    return undefined; // ended while we looked
  }
}

function allProcesses(): Map<number, Stat> {
  const all = new Map<number, Stat>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = statOf(Number(entry));
    if (stat !== undefined) all.set(Number(entry), stat);
  }
  return all;
}

/**
 * True while the process runs. A zombie counts as gone: it has ended and holds no port, it only
 * waits to be reaped, and an orphan's new parent (PID 1 here) may take a second to do that.
 */
export function alive(pid: number): boolean {
  const stat = statOf(pid);
  return stat !== undefined && stat.state !== 'Z';
}

/** The pids whose parent is `parent`. */
export function childrenOf(parent: number): number[] {
  return [...allProcesses()].filter(([, stat]) => stat.ppid === parent).map(([pid]) => pid);
}

/** Every process below `ancestor`: children, their children, and so on, parents first. */
export function descendantsOf(ancestor: number): number[] {
  const all = allProcesses();
  const found: number[] = [];
  for (let i = -1; i < found.length; i++) {
    const parent = i < 0 ? ancestor : found[i];
    for (const [pid, stat] of all) if (stat.ppid === parent) found.push(pid);
  }
  return found;
}

/**
 * Waits until none of `pids` runs, looking every 50 ms (no event tells that a process which is
 * not our child has ended), for at most `timeoutMs`.
 * @returns the pids still running at the deadline: [] when all are gone.
 */
export async function waitUntilGone(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = pids.filter(alive);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    left = left.filter(alive);
  }
  return left;
}

/**
 * SIGSTOPs `pid` and waits, for at most `timeoutMs`, until it is stopped. kill() can return
 * before the process stops (on this machine it went on for up to 5 ms), and a process stopped
 * late answers what it was sent meanwhile: a test of a hung server would then see none.
 */
export async function pauseProcess(pid: number, timeoutMs = 5_000): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = statOf(pid)?.state;
    if (state === 'T' || state === 't') return;
    if (state === undefined || state === 'Z') throw new Error(`process ${pid} ended while it was being paused`);
    if (Date.now() > deadline) throw new Error(`process ${pid} not stopped ${timeoutMs} ms after SIGSTOP`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** True when nothing listens on 127.0.0.1:`port` any more: a connection is refused. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') resolve(true);
      else reject(error);
    });
  });
}
