import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';

/** Where the lookup looks; each part can be replaced, so that its test does not depend on the machine. */
export interface ChromiumLookup {
  /** `TRELLIS_CHROMIUM` and `PATH` are read from here; `process.env` by default. */
  readonly env?: NodeJS.ProcessEnv;
  /** Paths tried, in order, after `TRELLIS_CHROMIUM`: Debian's `/usr/bin/chromium` by default. */
  readonly paths?: readonly string[];
  /** Names looked for in each `PATH` directory, in order, after `paths`. */
  readonly names?: readonly string[];
}

const debianChromium = ['/usr/bin/chromium'];
const chromiumNames = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'];

/** What to do when no browser is found; the one line a run without Chromium prints. */
export const noChromium =
  'No Chromium found (TRELLIS_CHROMIUM, /usr/bin/chromium, or chromium, chromium-browser, google-chrome, ' +
  'google-chrome-stable on PATH): install one with `apt-get install chromium`, or set TRELLIS_CHROMIUM ' +
  'to a Chromium or Chrome executable';

function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * The Chromium the page tests drive: `TRELLIS_CHROMIUM` if set (it must then be an executable
 * file), else `/usr/bin/chromium` (Debian's, which .ci/run installs), else the first of
 * chromium, chromium-browser, google-chrome, google-chrome-stable on `PATH`; `undefined` when
 * none is there. Synchronous and bounded (a few names in each `PATH` directory), so that a test
 * file can decide at load time whether its browser tests run.
 *
 * @throws Error naming TRELLIS_CHROMIUM when it is set to something that is not an executable file.
 * @example
 * findChromium(); // '/usr/bin/chromium' on a Debian machine with the chromium package
 */
export function findChromium(lookup: ChromiumLookup = {}): string | undefined {
  const env = lookup.env ?? process.env;
  const chosen = env['TRELLIS_CHROMIUM'];
  if (chosen !== undefined && chosen !== '') {
    if (!isExecutableFile(chosen)) {
      throw new Error(`TRELLIS_CHROMIUM=${chosen} is not an executable file: point it at a Chromium or Chrome binary`);
    }
    return path.resolve(chosen);
  }
  const found = (lookup.paths ?? debianChromium).find(isExecutableFile);
  if (found !== undefined) return found;
  // Empty entries (the current directory, by POSIX) are left out: a test should not run a
  // `chromium` that happens to lie in the folder it was started from.
  const directories = (env['PATH'] ?? '').split(path.delimiter).filter((directory) => directory !== '');
  for (const name of lookup.names ?? chromiumNames) {
    for (const directory of directories) {
      const file = path.join(directory, name);
      if (isExecutableFile(file)) return file;
    }
  }
  return undefined;
}

/** Whether a run without a browser fails (CI) rather than skips its browser tests. */
export function browserRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  return env['CI'] === 'true';
}

/**
 * `describe` for tests that drive Chromium: skipped when there is none (jest.config.ts's global
 * set-up then prints {@link noChromium} once for the run), except under CI, where they run and
 * fail (and the set-up has already refused to start).
 */
export function describeWithChromium(name: string, tests: () => void): void {
  const run = findChromium() !== undefined || browserRequired() ? describe : describe.skip;
  run(name, tests);
}

/**
 * The Chromium {@link findChromium} finds, headless and kept off the network: no QUIC, updates,
 * sync or background requests, so that a page test sees only the requests its page makes. For
 * every page test (the registry's dashboard, an app's /trellis). playwright-core brings no
 * browser of its own.
 */
export function launchHeadlessChromium(): Promise<Browser> {
  const executablePath = findChromium();
  if (executablePath === undefined) throw new Error(noChromium);
  return chromium.launch({
    executablePath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * Jest's global set-up (jest.config.ts): once per run, says that the browser tests are skipped
 * when no Chromium is found, so that a run on a fresh machine passes and says why it did less;
 * under CI (`CI=true`, as .ci/run runs) a missing browser fails the run instead. It lives here
 * because Jest loads a global set-up without the module mapping that relative `.js` imports need.
 */
export default function chromiumCheck(): void {
  if (findChromium() !== undefined) return;
  if (browserRequired()) throw new Error(`${noChromium}. CI=true: the browser tests must run.`);
  process.stderr.write(`\n*** Browser tests skipped. ${noChromium}. ***\n\n`);
}
