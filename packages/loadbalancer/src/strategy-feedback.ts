import {
  systemClock,
  type Call,
  type CallContext,
  type Clock,
  type Filter,
  type Reply,
  type Service,
} from '@trellis/core';
import type { Strategy } from './strategy.js';

/**
 * A per-attempt filter that tells a strategy when each attempt starts and ends, how long it
 * took, and whether it failed (threw, or a 5xx status): what least outstanding, peak EWMA and
 * bounded loads learn from. A ServiceClient's instance selection stage does this itself; this
 * filter is for a stack of your own, just after the stage that sets `context.instance`.
 * For a strategy that reads no feedback it passes attempts straight through.
 *
 * @example
 * const strategy = new P2CPeakEwma();
 * const feedback = filterStage('feedback', strategyFeedback(strategy), 'attempt');
 */
export function strategyFeedback(strategy: Strategy, clock: Clock = systemClock): Filter {
  if (!strategy.usesFeedback) return (call, context, next) => next(call, context);
  return (call, context, next) => reportTo(strategy, clock, call, context, next);
}

/** One attempt through `strategy`'s feedback: what {@link strategyFeedback}'s filter does, for a strategy chosen per attempt. */
export async function reportTo(
  strategy: Strategy,
  clock: Clock,
  call: Call,
  context: CallContext,
  next: Service,
): Promise<Reply> {
  const instance = context.instance;
  if (instance === undefined) return next(call, context);
  strategy.attemptStarted(instance);
  const started = clock.now();
  let failed = true;
  try {
    const reply = await next(call, context);
    failed = reply.status >= 500;
    return reply;
  } finally {
    strategy.attemptEnded(instance, clock.now() - started, failed);
  }
}
