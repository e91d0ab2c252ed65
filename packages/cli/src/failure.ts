import { ConfigError, RegistryRejectedError, RegistryUnavailableError, TrellisError } from '@trellis/core';

/** The exit codes of `trellis`: what scripts branch on. */
export const exitCodes = {
  /** Done. */
  ok: 0,
  /** The operation failed: the registry is unreachable or refused it, a conflict, not found. */
  failed: 1,
  /** Bad usage or invalid input: unknown command or flag, a missing --reason, invalid rules. Nothing was written. */
  usage: 2,
} as const;

/**
 * A refusal of the command line or of the input given (exit code 2); nothing was sent to the
 * registry, or at least nothing was written.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The operation itself failed (exit code 1): not found, or a refusal that says what to do. */
export class OperationError extends Error {
  override readonly name = 'OperationError';
}

/** What `run` prints for a failure, and the exit code. */
export interface Failure {
  readonly code: 1 | 2;
  /** One line, without the `trellis: ` prefix. */
  readonly line: string;
}

/**
 * Maps any error a command threw to its exit code and one line for people, naming what failed
 * and what to do. Never a stack trace.
 */
export function failureOf(error: unknown, registry: string): Failure {
  if (error instanceof UsageError) return { code: exitCodes.usage, line: oneLine(error.message) };
  if (error instanceof OperationError) return { code: exitCodes.failed, line: oneLine(error.message) };
  if (ConfigError.is(error)) return { code: exitCodes.usage, line: oneLine(`${error.field}: ${error.problem}`) };
  if (RegistryUnavailableError.is(error)) {
    const reason = oneLine(
      error.message.replace(/^registry at \S+ is unreachable: /, '').replace(/^consul: [\w.]+: /, ''),
    );
    return {
      code: exitCodes.failed,
      line: `cannot reach the registry at ${registry} (${reason}); start it, or point --registry (or CONSUL_HTTP_ADDR) at a running one`,
    };
  }
  if (RegistryRejectedError.is(error)) {
    const hint =
      error.status === 403 || error.status === 401
        ? '; give an ACL token allowed to do it with --token (or CONSUL_HTTP_TOKEN)'
        : '';
    const what = oneLine(error.message).replace(/^registry refused /, `the registry at ${registry} refused `);
    return { code: exitCodes.failed, line: `${what}${hint}` };
  }
  if (TrellisError.is(error) && (error.code as string) === 'RULES_CONFLICT') {
    return {
      code: exitCodes.failed,
      line: `${oneLine(error.message)}; someone else changed the rules meanwhile: look at them (trellis rules get) and run the command again`,
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: exitCodes.failed, line: oneLine(message) || 'failed for an unknown reason' };
}

/** Collapses a message onto one line: scripts read one line, and a stack trace is never shown. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, '; ').trim();
}
