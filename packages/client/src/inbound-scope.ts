import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The request a service is serving now, as the calls it makes for that request inherit it: the
 * signal that aborts when the request is abandoned, and its deadline (a reading of the app's
 * clock). A TrellisApp opens one per inbound request; a ServiceClient reads it for each call.
 */
export interface InboundScope {
  readonly signal: AbortSignal;
  readonly deadline: number | undefined;
}

const storage = new AsyncLocalStorage<InboundScope>();

/**
 * Where outbound calls find the inbound request they are made for (AsyncLocalStorage, so that
 * nothing has to be passed by hand through the service's own code).
 *
 * @example
 * app.http.addHook('onRequest', (_request, _reply, done) => inboundScope.run({ signal, deadline: clock.now() + 500 }, done));
 * const inbound = inboundScope.current(); // inside a handler: the request's signal and deadline
 */
export const inboundScope = {
  /** Runs `fn` (and everything it starts) inside `scope`. */
  run<T>(scope: InboundScope, fn: () => T): T {
    return storage.run(scope, fn);
  },
  /** The scope the current code runs in, or undefined outside any inbound request. */
  current(): InboundScope | undefined {
    return storage.getStore();
  },
};

/**
 * The request header that carries a call's remaining time to the instance it is sent to: whole
 * milliseconds, a non-negative integer, read when the attempt is sent (`x-trellis-timeout-ms:
 * 1480`). A relative time, as gRPC's `grpc-timeout` and Envoy's `x-envoy-expected-rq-timeout-ms`,
 * so that the clocks of the two machines need not agree.
 */
export const timeoutHeader = 'x-trellis-timeout-ms';
