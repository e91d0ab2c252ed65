import type { LogDestination } from '@trellis/app';

/** One log line of an app, as pino writes it. */
export type LogLine = Record<string, unknown> & { readonly level: number; readonly msg?: string };

/**
 * An app's `logDestination` for tests: keeps every line, parsed, and lets a test wait for the
 * first line whose message matches (an event, not a sleep).
 */
export class LogCollector implements LogDestination {
  readonly lines: LogLine[] = [];
  readonly #waiters: Array<{ pattern: RegExp; resolve: (line: LogLine) => void }> = [];

  write(text: string): void {
    const line = JSON.parse(text) as LogLine;
    this.lines.push(line);
    for (let i = this.#waiters.length - 1; i >= 0; i--) {
      const waiter = this.#waiters[i];
      if (waiter !== undefined && waiter.pattern.test(line.msg ?? '')) {
        this.#waiters.splice(i, 1);
        waiter.resolve(line);
      }
    }
  }

  /** Lines at warn (40) or above. */
  get warnings(): LogLine[] {
    return this.lines.filter((l) => l.level >= 40);
  }

  matching(pattern: RegExp): LogLine[] {
    return this.lines.filter((l) => pattern.test(l.msg ?? ''));
  }

  /** The first line matching `pattern`, logged already or to come. */
  next(pattern: RegExp): Promise<LogLine> {
    const seen = this.lines.find((l) => pattern.test(l.msg ?? ''));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ pattern, resolve }));
  }
}
