import { Telemetry, type Disposable, type InstanceSource, type Reply, type ServiceInstance } from '@trellis/core';
import { ServiceClient, type Transport } from '@trellis/client';
import { TrellisMetrics } from '@trellis/metrics';
import { CircuitBreakerRegistry } from '@trellis/resilience';
import { addTracing } from '@trellis/tracing';
import { startTracing, type TracingHandle } from '@trellis/tracing/sdk';
import { median, nsPerCall, printTable } from './measure.js';

/** What the client bench measures of tracing: a client to alternate with the untraced ones, and figures. */
export interface TracingBench {
  /** A governed call over axios with the tracing stages and the SDK on (batch processor, no-op exporter). */
  readonly traced: () => Promise<unknown>;
  /**
   * Prints the tracing figures and returns them for the last JSON line: `tracing_ratio` from the
   * rounds' medians, and the stacks over the instant transport.
   */
  report(tracedRps: number, untracedRps: number): Promise<Record<string, number>>;
  close(): Promise<void>;
}

// Spans are made, batched and handed to an exporter that drops them: the SDK's own cost, not a network's.
const dropAll = {
  export: (_spans: unknown[], done: (result: { code: number }) => void): void => done({ code: 0 }),
  shutdown: (): Promise<void> => Promise.resolve(),
};

/**
 * A transport that answers at once, but listens for cancellation as undici and axios do: the
 * stack's own cost, without the network's. The client bench's stack figures use it too.
 */
export function instantTransport(instance: ServiceInstance): Transport {
  const reply: Reply = { status: 200, headers: {}, body: { id: '1' }, instance };
  const onAbort = (): void => {};
  return {
    send: (_call, _instance, context) => {
      const signal = context.lightSignal();
      signal?.addEventListener('abort', onAbort, { once: true });
      signal?.removeEventListener('abort', onAbort);
      return Promise.resolve(reply);
    },
    close: () => Promise.resolve(),
  };
}

/**
 * Measures the stack with and without the tracing stages while no SDK is set up, then starts
 * the SDK for the rest of the run. Call before the rounds: every later figure of the run is
 * taken with the SDK registered, which only clients with the tracing stages notice.
 */
export async function setUpTracingBench(discovery: InstanceSource, instance: ServiceInstance): Promise<TracingBench> {
  const instant = instantTransport(instance);
  const plain = new ServiceClient({ service: 'users', discovery, transport: instant });
  const staged = new ServiceClient({ service: 'users', discovery, transport: instant, stack: addTracing });
  const plainCall = (): Promise<unknown> => plain.get('/users/1', { template: '/users/:id' });
  const stagedCall = (): Promise<unknown> => staged.get('/users/1', { template: '/users/:id' });
  await nsPerCall(plainCall, 100_000);
  await nsPerCall(stagedCall, 100_000);
  // Alternated, three times each: the difference is a few percent of a noisy figure.
  const plainRuns: number[] = [];
  const stagedRuns: number[] = [];
  for (let i = 0; i < 3; i++) {
    plainRuns.push(await nsPerCall(plainCall, 200_000));
    stagedRuns.push(await nsPerCall(stagedCall, 200_000));
  }
  await Promise.all([plain.close(), staged.close()]);

  const handle: TracingHandle = startTracing({ service: 'bench', exporter: dropAll });
  const tracedClient = new ServiceClient({ service: 'users', discovery, stack: addTracing });

  // As a TrellisApp wires its clients: one sink, metrics subscribed, a shared breaker registry
  // whose changes are logged (a line per change, none per call), the tracing stages.
  const telemetry = new Telemetry();
  const breakers = new CircuitBreakerRegistry();
  const metrics = new TrellisMetrics({ processMetrics: false });
  metrics.subscribe(telemetry);
  const breakerLog: Disposable = breakers.onStateChanged((change) => console.warn('breaker changed', change));
  const observed = new ServiceClient({
    service: 'users',
    discovery,
    transport: instant,
    telemetry,
    breakers,
    stack: addTracing,
  });
  const observedCall = (): Promise<unknown> => observed.get('/users/1', { template: '/users/:id' });

  const stackNs = median(plainRuns);
  const noSdkStackNs = median(stagedRuns);

  return {
    traced: () => tracedClient.get('/users/1', { template: '/users/:id' }),
    report: async (tracedRps, untracedRps) => {
      await nsPerCall(observedCall, 100_000);
      const runs: number[] = [];
      for (let i = 0; i < 3; i++) runs.push(await nsPerCall(observedCall, 200_000));
      const observedNs = median(runs);
      const ratio = tracedRps / untracedRps;
      console.log(`\nTracing's cost over the instant transport (medians of 3 x 200000 sequential calls):\n`);
      printTable(
        ['variant', 'ns_per_call'],
        [
          ['default stack, no tracing stages, no SDK', stackNs],
          ['default stack + tracing stages, no SDK set up', noSdkStackNs],
          ['observed: tracing stages + SDK (batch, no-op exporter) + metrics + breaker logs', observedNs],
        ],
      );
      console.log(`\ntracing_ratio (trellis over axios with tracing on / off): ${ratio.toFixed(3)}`);
      return {
        tracing_ratio: Number(ratio.toFixed(3)),
        observed_stack_ns_per_call: Math.round(observedNs),
        untraced_stack_ns_per_call: Math.round(stackNs),
        tracing_no_sdk_stack_ns_per_call: Math.round(noSdkStackNs),
      };
    },
    close: async () => {
      breakerLog.dispose();
      metrics.dispose();
      await Promise.all([tracedClient.close(), observed.close()]);
      await breakers.close();
      await handle.shutdown();
    },
  };
}
