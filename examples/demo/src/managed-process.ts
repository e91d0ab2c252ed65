import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

// From src/ (tests) and dist/ alike, the built module.
const exitWithParent = fileURLToPath(new URL('../dist/exit-with-parent.js', import.meta.url));

export interface ManagedProcessOptions {
  /** Label for its output lines, e.g. "users-1". */
  readonly name: string;
  /** Absolute path of the Node.js script to run. */
  readonly script: string;
  readonly args?: readonly string[];
  /** Added to this process's environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** Matches the line the process prints once it serves; group 1 is its URL. */
  readonly readyPattern?: RegExp;
  /** Give up waiting for the ready line after this long; default 20 s. */
  readonly readyTimeoutMs?: number;
  /** Receives every other line the process prints, already labelled. */
  readonly output?: (line: string) => void;
}

/**
 * A Node.js service run as a child process, known to be ready once it printed where it listens.
 * It runs in its own process group, so that a Ctrl-C reaches the launcher only, and the
 * launcher stops the services in order. It also stops itself when the launcher dies (kill -9,
 * a closed terminal): see exit-with-parent.ts.
 */
export class ManagedProcess {
  readonly name: string;
  /** The URL from the ready line. */
  readonly url: string;
  /** Settles with the exit code (or the signal's name) when the process ends. */
  readonly exited: Promise<number | string>;
  readonly #child: ChildProcess;

  private constructor(name: string, url: string, child: ChildProcess, exited: Promise<number | string>) {
    this.name = name;
    this.url = url;
    this.#child = child;
    this.exited = exited;
  }

  /**
   * Starts the script and waits for its ready line.
   * @throws Error when the script is missing (not built), exits first, or is not ready in time.
   */
  static start(options: ManagedProcessOptions): Promise<ManagedProcess> {
    if (!existsSync(options.script)) {
      return Promise.reject(new Error(`${options.name}: ${options.script} does not exist; run "npm run build" first`));
    }
    // The plain line a Trellis service or the registry prints once it serves: "users listening on
    // http://...". At log level info a JSON log line says "listening on" too, earlier, before the
    // service has registered; it starts with `{`.
    const readyPattern = options.readyPattern ?? /^[\w.-]+ listening on (http:\/\/[^\s"]+)/;
    const output = options.output ?? ((line: string) => console.log(line));
    const child = spawn(process.execPath, ['--import', exitWithParent, options.script, ...(options.args ?? [])], {
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      detached: true,
    });
    const exited = new Promise<number | string>((resolve) => {
      child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    });

    return new Promise((resolve, reject) => {
      let ready = false;
      const recent: string[] = [];
      const onLine = (line: string): void => {
        const match = ready ? null : readyPattern.exec(line);
        if (match?.[1] !== undefined) {
          ready = true;
          clearTimeout(timer);
          resolve(new ManagedProcess(options.name, match[1], child, exited));
          return;
        }
        recent.push(line);
        if (recent.length > 20) recent.shift();
        output(`[${options.name}] ${line}`);
      };
      for (const stream of [child.stdout, child.stderr]) {
        if (stream !== null) createInterface({ input: stream }).on('line', onLine);
      }
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${options.name} printed no ready line within ${options.readyTimeoutMs ?? 20_000} ms`));
      }, options.readyTimeoutMs ?? 20_000);
      void exited.then((code) => {
        clearTimeout(timer);
        if (!ready) reject(new Error(`${options.name} exited (${code}) before it was ready:\n${recent.join('\n')}`));
      });
    });
  }

  /** True until the process has exited. */
  get running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /**
   * Asks the process to stop with `signal`, and kills it if it has not exited after `timeoutMs`.
   * @returns its exit code, or the name of the signal that ended it.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<number | string> {
    if (!this.running) return this.exited;
    this.#child.kill(signal);
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
