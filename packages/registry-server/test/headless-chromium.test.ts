import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findChromium } from './headless-chromium.js';

// The lookup behind every page test, on fake executables in a temporary folder, so that what it
// finds does not depend on the browsers of this machine.
describe('findChromium', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'trellis-chromium-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function file(relative: string, mode: number): string {
    const full = path.join(dir, relative);
    mkdirSync(path.dirname(full), { recursive: true });
    writeFileSync(full, '#!/bin/sh\n');
    chmodSync(full, mode);
    return full;
  }

  it('takes TRELLIS_CHROMIUM first, over /usr/bin/chromium and PATH', () => {
    const chosen = file('chosen/chrome', 0o755);
    const other = file('bin/chromium', 0o755);
    expect(findChromium({ env: { TRELLIS_CHROMIUM: chosen, PATH: path.dirname(other) }, paths: [other] })).toBe(chosen);
  });

  it('refuses a TRELLIS_CHROMIUM that is not an executable file, naming the variable', () => {
    const plain = file('plain/chromium', 0o644);
    const lookup = { paths: [file('bin/chromium', 0o755)] };
    for (const value of [plain, path.join(dir, 'missing'), dir]) {
      expect(() => findChromium({ ...lookup, env: { TRELLIS_CHROMIUM: value } })).toThrow(
        `TRELLIS_CHROMIUM=${value} is not an executable file`,
      );
    }
  });

  it('treats an empty TRELLIS_CHROMIUM as unset', () => {
    const debian = file('usr/bin/chromium', 0o755);
    expect(findChromium({ env: { TRELLIS_CHROMIUM: '' }, paths: [debian] })).toBe(debian);
  });

  it('takes the fixed path (/usr/bin/chromium) before PATH', () => {
    const debian = file('usr/bin/chromium', 0o755);
    const onPath = file('bin/chromium', 0o755);
    expect(findChromium({ env: { PATH: path.dirname(onPath) }, paths: [debian] })).toBe(debian);
  });

  it('searches PATH, in the order of the names, when the fixed path is missing', () => {
    const first = path.join(dir, 'first');
    mkdirSync(first);
    file('first/chromium', 0o644); // not executable: passed over
    file('first/google-chrome', 0o755);
    const browser = file('second/chromium-browser', 0o755);
    const PATH = ['', first, path.join(dir, 'absent'), path.dirname(browser)].join(path.delimiter);
    expect(findChromium({ env: { PATH }, paths: [path.join(dir, 'usr/bin/chromium')] })).toBe(browser);
  });

  it('finds nothing where there is nothing', () => {
    file('bin/chromium', 0o644);
    expect(findChromium({ env: { PATH: path.join(dir, 'bin') }, paths: [path.join(dir, 'missing')] })).toBe(undefined);
    expect(findChromium({ env: {}, paths: [] })).toBe(undefined);
  });
});
