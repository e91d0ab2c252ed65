/** The `route` value of a call or request with no route template: never the raw path. */
export const unknownRoute = '_unknown';
/** The value a capped label takes once it holds its maximum of distinct values. */
export const overflowValue = '_other';
/** The `method` value of a method outside HTTP's registered set (OpenTelemetry's convention). */
export const otherMethod = '_OTHER';

const knownMethods = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

const classes = ['1xx', '2xx', '3xx', '4xx', '5xx'];

/** `2xx`, `4xx`, `5xx`, ... for an HTTP status; `none` when there was no answer. */
export function statusClass(status: number | undefined): string {
  if (status === undefined || !(status >= 100 && status <= 599)) return 'none';
  // From a table, not a template string: this runs on every call.
  return classes[Math.floor(status / 100) - 1] as string;
}

/** The method as a label: one of HTTP's methods, or `_OTHER`. */
export function methodLabel(method: string): string {
  if (knownMethods.has(method)) return method;
  const upper = method.toUpperCase();
  return knownMethods.has(upper) ? upper : otherMethod;
}

/**
 * The distinct values one label has taken, up to a cap: a value past the cap is reported as
 * {@link overflowValue}, so that a label fed from outside the code (instance ids that churn
 * with every deployment, route templates, error reasons) cannot grow the series without bound.
 */
export class LabelCap {
  readonly #seen = new Set<string>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  /** `value` while it is one of the first `max` distinct values seen, else {@link overflowValue}. */
  value(value: string): string {
    if (this.#seen.has(value)) return value;
    if (this.#seen.size >= this.#max) return overflowValue;
    this.#seen.add(value);
    return value;
  }
}
