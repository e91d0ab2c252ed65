import type { FastifyBaseLogger } from 'fastify';
import type { CircuitStateChanged, Disposable, Event } from '@trellis/core';
import type { SelfRegistration } from '@trellis/registry';

/**
 * Logs every breaker change of the app's clients, once per change (the event is one per
 * transition, however many calls an open breaker refuses): warn when an instance is cut off,
 * info when it is let back in. Inside a call, the line carries the call's trace ids.
 * Subscribed to the shared breaker registry rather than the telemetry sink, so that an app with
 * metrics off still has a sink nobody listens to, and its stages build no events.
 */
export function logBreakerChanges(log: FastifyBaseLogger, changes: Event<CircuitStateChanged>): Disposable {
  return changes((event) => {
    const fields = {
      event: event.type,
      service: event.service,
      instance: event.instance,
      from: event.from,
      to: event.to,
      calls: event.calls,
      failureRate: event.failureRate,
    };
    const who = event.instance === undefined ? `"${event.service}"` : `"${event.service}" instance ${event.instance}`;
    if (event.to === 'open' || event.to === 'isolated') {
      log.warn(
        fields,
        `breaker of ${who} ${event.to}: ${Math.round(event.failureRate * 100)}% of ${event.calls} calls failed`,
      );
    } else {
      log.info(fields, `breaker of ${who} ${event.to}`);
    }
  });
}

/**
 * Logs the registration of the app's instance once per change: registered, a heartbeat
 * outage (its first failure, not every heartbeat that fails), its end, and a registration
 * the registry had forgotten.
 */
export function logRegistration(log: FastifyBaseLogger, self: SelfRegistration, instance: string): void {
  let failing = false;
  self.onHeartbeatFailed((error) => {
    if (failing) return;
    failing = true;
    log.warn({ err: error, instance }, 'heartbeat to the registry failed; retrying at every heartbeat');
  });
  self.onHeartbeatRecovered(() => {
    failing = false;
    log.info({ instance }, 'heartbeat to the registry went through again');
  });
  self.onReregistered(() => log.info({ instance }, 'the registry had forgotten this instance; registered again'));
}
