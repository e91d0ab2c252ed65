import type { Call, CallContext, Reply, ServiceInstance } from '@trellis/core';

/** Sends one call to one chosen instance: the innermost stage of every governed call. */
export interface Transport {
  /**
   * Sends `call` to `instance` and returns whatever status it answers with. Pass
   * `context.signal` to the request, so that a timeout or a cancelled caller aborts it; read it
   * only here, since it is made on first read.
   * @throws ConnectionError when no answer came (refused, reset, unreachable).
   * @throws the signal's reason when it aborted the request.
   */
  send(call: Call, instance: ServiceInstance, context: CallContext): Promise<Reply>;
  /** Releases pooled connections. */
  close(): Promise<void>;
}
