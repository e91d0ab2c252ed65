import { accessSync, constants, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startSystem } from './system.js';

// Makes docs/images/trellis-page.png: the demo's forum's /trellis page in headless Chromium,
// after calls through the forum and one users instance killed without deregistering, so that
// the page shows what only the caller knows (the registry still lists the instance as passing;
// the forum's breaker for it is open). Run from the repository root after `npm run build`:
//   node examples/demo/dist/trellis-screenshot.js [out.png]
// Every process it starts is stopped before it exits (the killed one is already gone).
const out = path.resolve(process.argv[2] ?? 'docs/images/trellis-page.png');
const chromiumPath = findChromium();

/**
 * The browser, looked for in the order of the page tests (packages/registry-server/test/
 * headless-chromium.ts, which a built script cannot import): TRELLIS_CHROMIUM, Debian's
 * /usr/bin/chromium, then chromium, chromium-browser, google-chrome, google-chrome-stable on PATH.
 */
function findChromium(): string {
  const chosen = process.env['TRELLIS_CHROMIUM'];
  if (chosen !== undefined && chosen !== '') return chosen;
  const directories = (process.env['PATH'] ?? '').split(path.delimiter).filter((directory) => directory !== '');
  const names = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'];
  const candidates = ['/usr/bin/chromium', ...names.flatMap((name) => directories.map((d) => path.join(d, name)))];
  const found = candidates.find((file) => {
    try {
      accessSync(file, constants.X_OK);
      return statSync(file).isFile();
    } catch {
      return false;
    }
  });
  if (found === undefined) {
    throw new Error('No Chromium found: install one with `apt-get install chromium`, or set TRELLIS_CHROMIUM');
  }
  return found;
}

async function get(url: string): Promise<number> {
  const response = await fetch(url);
  await response.arrayBuffer();
  return response.status;
}

const dataDir = await mkdtemp(path.join(tmpdir(), 'trellis-screenshot-'));
const system = await startSystem({ dataDir, services: ['forum'], output: () => undefined });
try {
  const forum = system.forum!.url;
  for (let i = 0; i < 5; i++) {
    if ((await get(`${forum}/boards`)) !== 200) throw new Error('the forum does not answer /boards');
  }
  // SIGKILL: no deregistration, so the registry lists it until its TTL runs out; the forum's
  // calls to it are refused, failed over to users-1, and its breaker opens.
  await system.users[1]?.stop('SIGKILL');
  for (let i = 0; i < 48; i++) await get(`${forum}/threads/1`);

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1180, height: 560 } });
    await page.goto(`${forum}/trellis`);
    await page
      .locator('[data-client="users"] [data-breaker][data-state="open"]')
      .waitFor({ state: 'visible', timeout: 10_000 });
    await page.screenshot({ path: out, fullPage: true });
    console.log(`wrote ${out}`);
  } finally {
    await browser.close();
  }
} finally {
  await system.stop();
  await rm(dataDir, { recursive: true, force: true });
}
