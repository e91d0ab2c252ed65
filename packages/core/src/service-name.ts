/**
 * Whether `value` can name a service: letters, digits, "-", "_" or ".", starting with a letter or
 * digit. The app's `service` option and `@Client(service)` accept only such names, and the
 * scaffold (`npm init @trellis/service`) checks the name it is given with it; it lives here, in
 * the package with no dependencies, so that the scaffold stays light.
 *
 * @example
 * isServiceName('users'); // true
 * isServiceName('billing.v2'); // true
 * isServiceName('-users'); // false: it must start with a letter or digit
 */
export function isServiceName(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(value);
}
