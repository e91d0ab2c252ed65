import fs from 'node:fs';
import path from 'node:path';
import type { Clock, Timer } from '@trellis/core';

/** Watches one file, calling `changed` (debounced) when its content may have changed. */
export class FileWatch {
  readonly #file: string;
  readonly #clock: Clock;
  readonly #debounceMs: number;
  readonly #changed: () => void;
  readonly #watcher: fs.FSWatcher | undefined;
  readonly #pollMs: number;
  #timer: Timer | undefined;
  #closed = false;

  /**
   * @param pollMs the poll fallback's interval (fs.watch misses changes on some file systems and
   *   across editors' rename-on-save); 0 for none.
   */
  constructor(file: string, options: { clock: Clock; debounceMs: number; pollMs: number }, changed: () => void) {
    this.#file = file;
    this.#clock = options.clock;
    this.#debounceMs = options.debounceMs;
    this.#pollMs = options.pollMs;
    this.#changed = changed;
    // The folder, not the file: an editor that saves by renaming replaces the file watched.
    let watcher: fs.FSWatcher | undefined;
    try {
      watcher = fs.watch(path.dirname(file), { persistent: false }, (_event, name) => {
        if (name === null || name === path.basename(file)) this.#soon();
      });
      watcher.on('error', () => undefined);
    } catch {
      watcher = undefined; // the poll below still sees changes
    }
    this.#watcher = watcher;
    if (this.#pollMs > 0) fs.watchFile(file, { interval: this.#pollMs, persistent: false }, this.#onPoll);
  }

  readonly #onPoll = (current: fs.Stats, previous: fs.Stats): void => {
    if (current.mtimeMs !== previous.mtimeMs || current.size !== previous.size) this.#soon();
  };

  #soon(): void {
    if (this.#closed) return;
    this.#timer?.cancel();
    this.#timer = this.#clock.setTimer(this.#debounceMs, () => {
      this.#timer = undefined;
      if (!this.#closed) this.#changed();
    });
  }

  close(): void {
    this.#closed = true;
    this.#timer?.cancel();
    this.#watcher?.close();
    if (this.#pollMs > 0) fs.unwatchFile(this.#file, this.#onPoll);
  }
}
