/** Something that can be undone synchronously: an event subscription, a registration of a listener. */
export interface Disposable {
  dispose(): void;
}

/** A resource that holds a timer, socket or watch; `close()` releases it and may be called twice. */
export interface Closeable {
  close(): Promise<void>;
}

/** A {@link Disposable} that runs `undo` the first time it is disposed, and never again. */
export function toDisposable(undo: () => void): Disposable {
  let done = false;
  return {
    dispose() {
      if (done) return;
      done = true;
      undo();
    },
  };
}
