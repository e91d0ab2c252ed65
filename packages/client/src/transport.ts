import type { Call, Reply, ServiceInstance } from '@trellis/core';

/** Sends one call to one chosen instance: the innermost step of every governed call. */
export interface Transport {
  /**
   * Sends `call` to `instance` and returns whatever status it answers with.
   * @throws ConnectionError when no answer came (refused, reset, unreachable).
   */
  send(call: Call, instance: ServiceInstance): Promise<Reply>;
  /** Releases pooled connections. */
  close(): Promise<void>;
}
