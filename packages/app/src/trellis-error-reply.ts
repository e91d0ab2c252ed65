import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { TrellisError, type ErrorCode } from '@trellis/core';
import { HttpError } from './controllers/http-error.js';

// What a caller of this service should understand from a failed call further down:
// 503 when a dependency is unavailable (try again later), 502 when it answered badly.
const statusByCode: Partial<Record<ErrorCode, number>> = {
  NO_INSTANCES: 503,
  CONNECTION_FAILED: 503,
  REGISTRY_UNAVAILABLE: 503,
  CIRCUIT_OPEN: 503,
  RATE_LIMITED: 503,
  BULKHEAD_FULL: 503,
  UPSTREAM_STATUS: 502,
  TIMEOUT: 504,
};

/**
 * The HTTP status the app answers for a Trellis error from a call further down: 503 when the
 * dependency is unavailable (no instances, refused, breaker open, limited), 502 for a bad answer,
 * 504 for a timeout, 500 otherwise.
 * @example
 * errorStatus(new NoInstancesError('users')); // 503
 */
export function errorStatus(error: TrellisError): number {
  return statusByCode[error.code] ?? 500;
}

/**
 * The app's error handler: a Trellis error escaping a route becomes a JSON answer with its code,
 * message and the service concerned, and an HTTP status that says whether to try again; an
 * {@link HttpError} is answered as it says; other errors keep Fastify's own answer (400 for
 * validation, 500 otherwise).
 */
export async function trellisErrorReply(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  if (HttpError.is(error)) {
    // The service's own verdict: worth a log line only when it says the service failed.
    if (error.status >= 500) request.log.warn({ err: error }, 'request answered with an error');
    await reply.code(error.status).send({
      error: error.code,
      message: error.message,
      ...(error.field === undefined ? {} : { field: error.field }),
    });
    return;
  }
  if (!TrellisError.is(error)) {
    const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500) request.log.error({ err: error }, 'request failed');
    await reply
      .code(status)
      .send({ error: error.code ?? 'INTERNAL', message: status >= 500 ? 'internal error' : error.message });
    return;
  }
  const status = errorStatus(error);
  request.log.warn({ err: error }, 'a call to another service failed');
  await reply.code(status).send({
    error: error.code,
    message: error.message,
    ...(error.service === undefined ? {} : { service: error.service }),
  });
}
