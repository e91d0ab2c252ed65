// Nanoseconds per unit, as Go's time.ParseDuration knows them (µ is U+00B5, μ is U+03BC).
const unitNanos: ReadonlyMap<string, number> = new Map([
  ['ns', 1],
  ['us', 1e3],
  ['\u00b5s', 1e3],
  ['\u03bcs', 1e3],
  ['ms', 1e6],
  ['s', 1e9],
  ['m', 60e9],
  ['h', 3600e9],
]);

// Go keeps a duration in an int64 of nanoseconds; anything beyond is an error there too.
const maxNanos = 2 ** 63 - 1;

/**
 * Parses a Go duration string (`time.ParseDuration`), the form Consul uses for check TTLs and
 * timeouts: a sequence of decimal numbers with a unit each, like `"10s"`, `"1m30s"`,
 * `"500ms"`, `"1.5h"`, optionally signed; `"0"` alone needs no unit.
 *
 * @returns the duration in milliseconds (fractional below 1 ms).
 * @throws RangeError when `text` is not a Go duration, naming the problem.
 * @example
 * parseGoDuration('1m30s'); // 90000
 * parseGoDuration('250us'); // 0.25
 */
export function parseGoDuration(text: string): number {
  let rest = text;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest.startsWith('-')) sign = -1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') throw new RangeError(`invalid duration "${text}"`);

  let nanos = 0;
  while (rest !== '') {
    const number = /^(\d*)(?:\.(\d*))?/.exec(rest);
    const whole = number?.[1] ?? '';
    const fraction = number?.[2] ?? '';
    if (whole === '' && fraction === '') throw new RangeError(`invalid duration "${text}"`);
    rest = rest.slice(number?.[0].length ?? 0);

    const unit = /^[^\d.]+/.exec(rest)?.[0];
    if (unit === undefined) throw new RangeError(`missing unit in duration "${text}"`);
    const scale = unitNanos.get(unit);
    if (scale === undefined) throw new RangeError(`unknown unit "${unit}" in duration "${text}"`);
    rest = rest.slice(unit.length);

    nanos += Number(`${whole === '' ? '0' : whole}.${fraction === '' ? '0' : fraction}`) * scale;
    if (nanos > maxNanos) throw new RangeError(`invalid duration "${text}": too large`);
  }
  return (sign * nanos) / 1e6;
}
