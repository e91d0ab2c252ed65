import { spawn, type ChildProcess } from 'node:child_process';
import { systemClock, type Clock, type Timer } from '@trellis/core';
import { formatGoDuration } from '../catalog/consul-json.js';
import type { CheckStatus, ScriptCheckSpec } from '../catalog/service-definition.js';

/** What one run of a script check found: the status to set and its Output. */
export interface ScriptCheckResult {
  readonly status: CheckStatus;
  readonly output: string;
}

/** A check the runner is running; {@link stop} ends it, killing a run in progress. */
export interface ScriptCheckHandle {
  stop(): void;
}

/** How much of a script's output goes into Output: the last 4 KiB, as Consul keeps. */
export const scriptCheckOutputLimit = 4 * 1024;

/** Options of {@link ScriptCheckRunner}. */
export interface ScriptCheckRunnerOptions {
  /** Drives intervals and timeouts; default `systemClock`. */
  readonly clock?: Clock;
  /** Scripts running at once, across all checks; the others wait their turn. Default 8. */
  readonly maxConcurrent?: number;
}

/**
 * Runs script checks as a Consul agent does: `Args` executed directly (no shell), once at
 * once and then `intervalMs` after each run ends, each given `timeoutMs`. Exit 0 is passing,
 * 1 warning, anything else critical; the Output is what the script wrote to stdout and stderr,
 * its last 4 KiB. A run past its timeout is killed with its whole process group and is critical
 * with Consul's `Timed out (<timeout>) running check`. At most `maxConcurrent` scripts run at
 * once; a run waits for a slot (one waiting run a check at most, so the queue is bounded by the
 * number of checks). POSIX only: the group kill needs process groups.
 *
 * @example
 * const runner = new ScriptCheckRunner({ clock });
 * const disk = { args: ['/usr/local/bin/check-disk', '--min', '10%'], intervalMs: 10_000, timeoutMs: 30_000 };
 * const handle = runner.start(disk, (result) => console.log(result.status, result.output));
 * handle.stop();
 */
export class ScriptCheckRunner {
  readonly #clock: Clock;
  readonly #maxConcurrent: number;
  readonly #running = new Set<ScriptCheckHandle>();
  readonly #waiting: (() => void)[] = [];
  #active = 0;

  constructor(options: ScriptCheckRunnerOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#maxConcurrent = options.maxConcurrent ?? 8;
  }

  /** Checks being run now. */
  get running(): number {
    return this.#running.size;
  }

  /**
   * Starts running `spec`: now, then `intervalMs` after each run ends. `report` gets every
   * result, never after {@link ScriptCheckHandle.stop}.
   */
  start(spec: ScriptCheckSpec, report: (result: ScriptCheckResult) => void): ScriptCheckHandle {
    let stopped = false;
    let timer: Timer | undefined;
    let kill: (() => void) | undefined;
    let queued: (() => void) | undefined;
    const run = (): void => {
      timer = undefined;
      queued = () => {
        queued = undefined;
        if (stopped) return this.#release();
        const execution = execute(spec, this.#clock);
        kill = execution.kill;
        void execution.result.then((result) => {
          kill = undefined;
          this.#release();
          if (stopped) return;
          timer = this.#clock.setTimer(spec.intervalMs, run);
          report(result);
        });
      };
      this.#acquire(queued);
    };
    const handle: ScriptCheckHandle = {
      stop: () => {
        stopped = true;
        timer?.cancel();
        kill?.();
        if (queued !== undefined) {
          const at = this.#waiting.indexOf(queued);
          if (at !== -1) this.#waiting.splice(at, 1);
        }
        this.#running.delete(handle);
      },
    };
    this.#running.add(handle);
    run();
    return handle;
  }

  /** Stops every check, killing the scripts still running. */
  close(): void {
    for (const handle of [...this.#running]) handle.stop();
  }

  #acquire(start: () => void): void {
    if (this.#active < this.#maxConcurrent) {
      this.#active++;
      start();
    } else {
      this.#waiting.push(start);
    }
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next === undefined) this.#active--;
    else next();
  }
}

// One run: the process, a timeout on the clock, and its output kept to the last 4 KiB.
function execute(spec: ScriptCheckSpec, clock: Clock): { kill: () => void; result: Promise<ScriptCheckResult> } {
  const [command = '', ...args] = spec.args;
  let child: ChildProcess;
  try {
    // detached: the script leads a process group of its own, so that a kill reaches whatever
    // it started too. No shell: Args are the argv, as Consul runs them.
    child = spawn(command, args, { detached: true, shell: false, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    return { kill: () => undefined, result: Promise.resolve({ status: 'critical', output: messageOf(error) }) };
  }
  const output = new TailBuffer(scriptCheckOutputLimit);
  child.stdout?.on('data', (chunk: Buffer) => output.write(chunk));
  child.stderr?.on('data', (chunk: Buffer) => output.write(chunk));
  const killGroup = (): void => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  };
  let timedOut = false;
  const timeout = clock.setTimer(spec.timeoutMs, () => {
    timedOut = true;
    killGroup();
  });
  const result = new Promise<ScriptCheckResult>((resolve) => {
    child.once('error', (error) => {
      timeout.cancel();
      resolve({ status: 'critical', output: messageOf(error) });
    });
    // 'close': the process has exited and its output is all read.
    child.once('close', (code) => {
      timeout.cancel();
      if (timedOut) {
        const text = output.text();
        const message = `Timed out (${formatGoDuration(spec.timeoutMs)}) running check`;
        resolve({ status: 'critical', output: text === '' ? message : `${message}\n\n${text}` });
        return;
      }
      const status: CheckStatus = code === 0 ? 'passing' : code === 1 ? 'warning' : 'critical';
      resolve({ status, output: output.text() });
    });
  });
  return {
    kill: () => {
      timeout.cancel();
      killGroup();
    },
    result,
  };
}

// Keeps the last `size` bytes written, and how many were written in all (Consul's circbuf).
class TailBuffer {
  readonly #size: number;
  #chunks: Buffer[] = [];
  #kept = 0;
  #total = 0;

  constructor(size: number) {
    this.#size = size;
  }

  write(chunk: Buffer): void {
    this.#total += chunk.length;
    this.#chunks.push(chunk);
    this.#kept += chunk.length;
    if (this.#kept > 2 * this.#size) {
      const tail = Buffer.concat(this.#chunks).subarray(-this.#size);
      this.#chunks = [tail];
      this.#kept = tail.length;
    }
  }

  text(): string {
    const tail = Buffer.concat(this.#chunks).subarray(-this.#size).toString('utf8');
    if (this.#total <= this.#size) return tail;
    return `Captured ${this.#size} of ${this.#total} bytes\n...\n${tail}`;
  }
}

function messageOf(error: unknown): string {
  // Not instanceof: an error from node:child_process may come from another realm (Jest's VM).
  return typeof error === 'object' && error !== null && 'message' in error ? String(error.message) : String(error);
}
