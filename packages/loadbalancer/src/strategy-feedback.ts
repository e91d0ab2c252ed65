import { systemClock, type Attempt, type Clock, type Filter, type Reply } from '@trellis/core';
import type { Strategy } from './strategy.js';

/**
 * The attempt filter that tells a strategy when each attempt starts and ends, how long it
 * took, and whether it failed (threw, or a 5xx status): what least outstanding, peak EWMA and
 * bounded loads learn from. Put it among a client's attempt filters, outermost, so that the
 * time measured includes what the other attempt filters add (a breaker's wait, a timeout).
 * For a strategy that reads no feedback it passes attempts straight through.
 *
 * @example
 * const strategy = new P2CPeakEwma();
 * new ServiceClient({ service: 'users', discovery, strategy, attemptFilters: [strategyFeedback(strategy)] });
 */
export function strategyFeedback(strategy: Strategy, clock: Clock = systemClock): Filter<Attempt, Reply> {
  if (!strategy.usesFeedback) return (attempt, next) => next(attempt);
  return async (attempt, next) => {
    const instance = attempt.instance;
    strategy.attemptStarted(instance);
    const started = clock.now();
    let failed = true;
    try {
      const reply = await next(attempt);
      failed = reply.status >= 500;
      return reply;
    } finally {
      strategy.attemptEnded(instance, clock.now() - started, failed);
    }
  };
}
