import { monitorEventLoopDelay } from 'node:perf_hooks';
import { RegistryServer } from '@trellis/registry-server';
import type { ServerStats, ToParent, ToServer } from './registry-child.js';

// The registry server under benchmark, run as its own process so that the load generator does
// not share its event loop. It sends its port to the parent over IPC, then answers each
// `stats` request with its memory and held blocking queries; it exits when the parent leaves.
// Forked with --expose-gc, so that memory can be read after a full collection.

// No per-client cap: the bench's thousand watchers all come from 127.0.0.1.
const server = new RegistryServer({ logLevel: 'silent', httpMaxConnsPerClient: 0 });
const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
send({ type: 'listening', port });
// How long the loop was held between two stats requests: what any request arriving then waited.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

process.on('message', (message: ToServer) => {
  if (message.type !== 'stats') return;
  if (message.gc) (globalThis as { gc?: () => void }).gc?.();
  const memory = process.memoryUsage();
  const stats: ServerStats = {
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    heldQueries: server.heldQueries,
    answerCacheBytes: server.stats().answerCacheBytes,
    // The histogram counts the resolution itself in every sample.
    loopDelayMaxMs: Math.max(0, loopDelay.max / 1e6 - 10),
  };
  loopDelay.reset();
  send({ type: 'stats', id: message.id, stats });
});

process.on('disconnect', () => {
  void server.close().finally(() => process.exit(0));
});

function send(message: ToParent): void {
  process.send?.(message);
}
