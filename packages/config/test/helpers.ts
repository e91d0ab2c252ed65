import type { Clock, Event } from '@trellis/core';
import { RegistryServer } from '@trellis/registry-server';

/** A quiet registry server on a free port of 127.0.0.1. */
export async function startServer(clock?: Clock, port = 0): Promise<{ server: RegistryServer; url: string }> {
  const server = new RegistryServer({
    logLevel: 'silent',
    nodeName: 'trellis',
    ...(clock === undefined ? {} : { clock }),
  });
  const { url } = await server.listen({ port, host: '127.0.0.1' });
  return { server, url };
}

/** The next value of `event` that `accept` takes; rejects after `timeoutMs`. */
export function next<T>(event: Event<T>, accept: (value: T) => boolean = () => true, timeoutMs = 5_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      subscription.dispose();
      reject(new Error(`no matching event within ${timeoutMs} ms`));
    }, timeoutMs);
    const subscription = event((value) => {
      if (!accept(value)) return;
      clearTimeout(timer);
      subscription.dispose();
      resolve(value);
    });
  });
}

/**
 * Waits until `condition` holds, looking again on each turn of the event loop after I/O; for
 * a server's counters, which no event reports. Rejects after `timeoutMs`.
 */
export async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
