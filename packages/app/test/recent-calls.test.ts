import { ManualClock, Telemetry } from '@trellis/core';
import { maxTrackedInstances, RecentCallsTracker } from '../src/trellis-page/trellis-status.js';

// The /trellis page's tally of calls per instance, fed by telemetry as a client feeds it.
describe('RecentCallsTracker', () => {
  const attempt = (telemetry: Telemetry, instance: string, status: number, durationMs: number): void => {
    const base = { service: 'users', instance, attempt: 1, method: 'GET', template: undefined };
    telemetry.emit({ type: 'attempt-started', ...base });
    telemetry.emit({
      type: 'attempt-ended',
      ...base,
      outcome: status >= 500 ? 'failure' : 'success',
      status,
      error: undefined,
      durationMs,
    });
  };

  it('tallies attempts, failures, calls in flight and the last latency per instance', () => {
    const clock = new ManualClock(5_000);
    const telemetry = new Telemetry();
    const tracker = new RecentCallsTracker(telemetry, clock);
    attempt(telemetry, 'users-1', 200, 12);
    attempt(telemetry, 'users-1', 503, 3);
    telemetry.emit({
      type: 'attempt-started',
      service: 'users',
      instance: 'users-1',
      attempt: 1,
      method: 'GET',
      template: undefined,
    });
    expect(tracker.get('users-1')).toEqual({
      attempts: 2,
      failures: 1,
      outstanding: 1,
      lastLatencyMs: 3,
      lastOutcome: 'failure',
      lastStatus: 503,
      lastAt: 5_000,
    });
    expect(tracker.get('users-2')).toBeUndefined();
    tracker.dispose();
    expect(telemetry.enabled).toBe(false);
  });

  it('stays bounded as instances come and go, forgetting the oldest idle one and keeping those with calls in flight', () => {
    const telemetry = new Telemetry();
    const tracker = new RecentCallsTracker(telemetry, new ManualClock());
    telemetry.emit({
      type: 'attempt-started',
      service: 'users',
      instance: 'busy',
      attempt: 1,
      method: 'GET',
      template: undefined,
    });
    for (let i = 0; i < maxTrackedInstances * 3; i++) attempt(telemetry, `users-${i}`, 200, 1);
    expect(tracker.size).toBe(maxTrackedInstances);
    expect(tracker.get('busy')?.outstanding).toBe(1);
    expect(tracker.get('users-0')).toBeUndefined();
    expect(tracker.get(`users-${maxTrackedInstances * 3 - 1}`)?.attempts).toBe(1);
    tracker.dispose();
  });
});
