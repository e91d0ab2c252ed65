import type { ServiceInstance } from '@trellis/core';
import type { Registration, ServiceWatch, WatchEvent } from '@trellis/registry';

export function instance(id: string, service = 'users', port = 4000): ServiceInstance {
  return { id, service, address: '127.0.0.1', port, tags: ['http'], meta: { version: '1.0.0', weight: 1, labels: {} } };
}

export function registration(id: string, service = 'users'): Registration {
  return { instance: instance(id, service), ttlMs: 3_000, deregisterAfterMs: 60_000 };
}

/**
 * The next event of `type` from `watch`, or an error naming it after `timeoutMs` (below the test's
 * timeout, so a watch that never fires says what it missed instead of "Exceeded timeout").
 */
export function nextEvent(watch: ServiceWatch, type: WatchEvent['type'], timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      listener.dispose();
      reject(new Error(`no ${type} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = watch.onEvent((e) => {
      if (e.type !== type) return;
      clearTimeout(timer);
      listener.dispose();
      resolve();
    });
  });
}

/** Every event of `watch` as a line: `instance-added users-1`. */
export function eventLog(watch: ServiceWatch): string[] {
  const seen: string[] = [];
  watch.onEvent((e) => seen.push('instance' in e ? `${e.type} ${e.instance.id}` : e.type));
  return seen;
}
