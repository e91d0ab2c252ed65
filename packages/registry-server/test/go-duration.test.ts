import { describe, expect, it } from '@jest/globals';
import { parseGoDuration } from '@trellis/registry-server';

describe('parseGoDuration reads Go duration strings as milliseconds', () => {
  it.each([
    ['10s', 10_000],
    ['1m30s', 90_000],
    ['500ms', 500],
    ['1.5h', 5_400_000],
    ['2h45m0.5s', 9_900_500],
    ['250us', 0.25],
    ['250\u00b5s', 0.25],
    ['1000000ns', 1],
    ['.5s', 500],
    ['1.s', 1_000],
    ['0', 0],
    ['-1m', -60_000],
    ['+3s', 3_000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 9);
  });

  it.each(['', '10', '1x', 's', '.s', '1.5.5s', '10 s', ' 10s', '1m 30s', '-', '9999999999h'])(
    'refuses %j with a RangeError',
    (text) => {
      expect(() => parseGoDuration(text)).toThrow(RangeError);
    },
  );
});
