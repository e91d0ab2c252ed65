import { chromium, type Browser } from 'playwright-core';

/**
 * Debian's Chromium (installed by .ci/run; playwright-core brings no browser), headless and kept
 * off the network: no QUIC, updates, sync or background requests, so that a page test sees only
 * the requests its page makes. For every page test (the registry's dashboard, an app's /trellis).
 */
export function launchHeadlessChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
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
