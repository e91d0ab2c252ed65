import 'reflect-metadata';
import { TrellisApp } from '@trellis/app';

// One process of the control-plane bench: `FOLLOWERS` apps that call "users", each following
// `trellis/rules/users` as any service does (its own KV client and watch), each telling the
// parent the wall-clock time at which its client applied a version.
const registryUrl = process.env.TRELLIS_REGISTRY_URL as string;
const followers = Number(process.env.FOLLOWERS ?? '10');
const processIndex = Number(process.env.PROCESS_INDEX ?? '0');

/** A follower applied a version of the rules, at this time (ms since the epoch, sub-ms precision). */
export interface Applied {
  readonly type: 'applied';
  readonly follower: string;
  readonly version: number;
  readonly at: number;
}

const apps: TrellisApp[] = [];
for (let i = 0; i < followers; i++) {
  const name = `caller-${processIndex}-${i}`;
  const app = new TrellisApp({
    service: name,
    calls: ['users'],
    registryUrl,
    metrics: false,
    logLevel: 'silent',
    drainMs: 0,
  });
  app.telemetry.onEvent((event) => {
    if (event.type !== 'rules-applied' || event.service !== 'users' || event.version === undefined) return;
    const message: Applied = {
      type: 'applied',
      follower: name,
      version: event.version,
      at: performance.timeOrigin + performance.now(),
    };
    process.send?.(message);
  });
  apps.push(app);
}
await Promise.all(apps.map((app) => app.start()));
// Made now, so that each app follows the rules of "users" from here on.
for (const app of apps) app.client('users');
process.send?.({ type: 'ready' });
process.on('disconnect', () => {
  void Promise.all(apps.map((app) => app.close())).finally(() => process.exit(0));
});
