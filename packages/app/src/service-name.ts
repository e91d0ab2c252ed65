/** Whether `value` can name a service: letters, digits, "-", "_" or ".", starting with a letter or digit. */
export function isServiceName(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(value);
}
