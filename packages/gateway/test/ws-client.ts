import { WebSocket, type RawData } from 'ws';

/** A WebSocket client whose messages and close can be awaited, each wait bounded. */
export class TestSocket {
  readonly socket: WebSocket;
  readonly #messages: string[] = [];
  readonly #waiters: Array<(message: string) => void> = [];
  readonly closed: Promise<number>;

  constructor(url: string, headers: Record<string, string> = {}) {
    this.socket = new WebSocket(url, { headers });
    this.socket.on('message', (data: RawData) => {
      // eslint-disable-next-line @typescript-eslint/no-base-to-string
      const text = String(data);
      const waiter = this.#waiters.shift();
      if (waiter === undefined) this.#messages.push(text);
      else waiter(text);
    });
    this.closed = new Promise((resolve) => this.socket.once('close', (code: number) => resolve(code)));
  }

  /** Resolves when open; rejects with the HTTP status of a refused upgrade. */
  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.once('open', () => resolve());
      this.socket.once('unexpected-response', (_request, response) =>
        reject(new Error(`upgrade refused with ${response.statusCode}`)),
      );
      this.socket.once('error', reject);
    });
  }

  /** The next message, within `ms`. */
  next(ms = 5_000): Promise<string> {
    const queued = this.#messages.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return within(ms, 'a message', new Promise((resolve) => this.#waiters.push(resolve)));
  }

  async send(text: string): Promise<string> {
    this.socket.send(text);
    return this.next();
  }

  close(): void {
    this.socket.terminate();
  }
}

/** `promise`, or a rejection naming what was awaited after `ms`. */
export function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
