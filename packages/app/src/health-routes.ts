import type { FastifyInstance } from 'fastify';
import type { Clock, ServiceInstance } from '@trellis/core';
import type { Discovery, RegistrationStatus } from '@trellis/registry';
import type { AppState } from './trellis-page/trellis-status.js';

/**
 * A health status as Spring Boot's actuator words it: `UP` serves, `DOWN` cannot serve (a
 * check failed), `OUT_OF_SERVICE` is not serving on purpose (starting or shutting down).
 */
export type HealthStatus = 'UP' | 'DOWN' | 'OUT_OF_SERVICE';

/** One check of a {@link HealthReport}: its status and what it looked at. */
export interface HealthCheck {
  readonly status: HealthStatus;
  readonly [detail: string]: unknown;
}

/**
 * What `/health/live` and `/health/ready` answer: the overall status (the worst of the checks:
 * DOWN, then OUT_OF_SERVICE, then UP) and each check by name. Readiness checks are `lifecycle`
 * (the app's state), `registration` (the registry accepted the instance) and one
 * `dependency:<service>` per critical dependency (discovery's cache holds a healthy instance).
 */
export interface HealthReport {
  readonly status: HealthStatus;
  readonly checks: Readonly<Record<string, HealthCheck>>;
}

/** What `/info` answers (Spring Boot's /actuator/info, with the instance and its uptime). */
export interface AppInfo {
  readonly service: string;
  /** The `version` option; null when not given. */
  readonly version: string | null;
  /** The instance id; null before start. */
  readonly instance: string | null;
  /** Whole seconds since start() began; 0 before. */
  readonly uptimeSeconds: number;
  /** The Node.js version running the service, e.g. "v24.11.0". */
  readonly node: string;
}

/** What the health routes read of the app: plain getters, none of which asks the network. */
export interface HealthSource {
  readonly service: string;
  readonly version: string | undefined;
  readonly clock: Clock;
  readonly critical: readonly string[];
  readonly discovery: Discovery;
  state(): AppState;
  instance(): ServiceInstance | undefined;
  registration(): RegistrationStatus | undefined;
  /** The clock's reading when start() began; undefined before. */
  startedAt(): number | undefined;
}

/** Liveness: the process answers, so its event loop turns; UP whenever it can answer at all. */
export function liveness(app: HealthSource): HealthReport {
  const state = app.state();
  const status: HealthStatus = state === 'closed' ? 'DOWN' : 'UP';
  return { status, checks: { lifecycle: { status, state } } };
}

/**
 * Readiness: UP only while the app runs, the registry has accepted its instance, and every
 * critical dependency has a healthy instance in discovery's cache. Reads state only.
 */
export function readiness(app: HealthSource): HealthReport {
  const state = app.state();
  const checks: Record<string, HealthCheck> = {
    lifecycle: { status: state === 'running' ? 'UP' : 'OUT_OF_SERVICE', state },
  };
  const registration = app.registration();
  checks['registration'] =
    registration?.registered === true
      ? { status: 'UP', instance: registration.instanceId }
      : {
          status: state === 'running' ? 'DOWN' : 'OUT_OF_SERVICE',
          instance: registration?.instanceId ?? null,
          ...(registration?.lastError === undefined ? {} : { lastError: registration.lastError }),
        };
  for (const service of app.critical) {
    const view = app.discovery.describe(service);
    const healthy = view?.healthy.length ?? 0;
    checks[`dependency:${service}`] = {
      status: healthy > 0 ? 'UP' : 'DOWN',
      healthy,
      registryReachable: view?.registryReachable ?? null,
    };
  }
  return { status: worst(Object.values(checks)), checks };
}

/** What `/info` answers now. */
export function appInfo(app: HealthSource): AppInfo {
  const startedAt = app.startedAt();
  return {
    service: app.service,
    version: app.version ?? null,
    instance: app.instance()?.id ?? null,
    uptimeSeconds: startedAt === undefined ? 0 : Math.max(0, Math.floor((app.clock.now() - startedAt) / 1_000)),
    node: process.version,
  };
}

/**
 * Serves `GET /health/live` (200 while the process answers), `GET /health/ready` (200 only when
 * {@link readiness} is UP, else 503) and `GET /info`, each as JSON; `/health` is the app's own.
 * Platforms probe these every few seconds: they read the app's state and discovery's cache only.
 */
export function serveHealth(http: FastifyInstance, app: HealthSource): void {
  http.get('/health/live', async (_request, reply) => {
    const report = liveness(app);
    return reply.code(report.status === 'UP' ? 200 : 503).send(report);
  });
  http.get('/health/ready', async (_request, reply) => {
    const report = readiness(app);
    return reply.code(report.status === 'UP' ? 200 : 503).send(report);
  });
  http.get('/info', async () => appInfo(app));
}

/** Routes polled by machines: no inbound limit and no SERVER span applies to them. */
export const healthRoutes: ReadonlySet<string> = new Set(['/health', '/health/live', '/health/ready', '/info']);

const severity: Readonly<Record<HealthStatus, number>> = { UP: 0, OUT_OF_SERVICE: 1, DOWN: 2 };

function worst(checks: readonly HealthCheck[]): HealthStatus {
  let status: HealthStatus = 'UP';
  for (const check of checks) if (severity[check.status] > severity[status]) status = check.status;
  return status;
}
