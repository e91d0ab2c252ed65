import { type Browser } from 'playwright-core';
import { ManualClock } from '@trellis/core';
import { RegistryServer } from '@trellis/registry-server';
import { describeWithChromium, launchHeadlessChromium } from './headless-chromium.js';

// The /ui page under ACLs, in Debian's headless Chromium (.ci/run installs it): the page itself
// is open, and its API calls carry the token given in the URL fragment.
describeWithChromium('the dashboard with ACLs on', () => {
  let browser: Browser;
  let server: RegistryServer;

  beforeAll(async () => {
    browser = await launchHeadlessChromium();
  }, 60_000);
  afterAll(async () => {
    await browser.close();
  });
  afterEach(async () => {
    await server.close();
  });

  it('sends the token of /ui#token=<secret> as X-Consul-Token and shows what it may read', async () => {
    server = new RegistryServer({
      logLevel: 'silent',
      clock: new ManualClock(),
      acl: { enabled: true, initialManagementToken: 'root' },
    });
    const { url } = await server.listen({ port: 0, host: '127.0.0.1' });
    const register = await fetch(`${url}/v1/agent/service/register`, {
      method: 'PUT',
      headers: { 'X-Consul-Token': 'root' },
      body: JSON.stringify({ Name: 'users', ID: 'users-1', Port: 8080 }),
    });
    expect(register.status).toBe(200);

    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const tokens: (string | undefined)[] = [];
      page.on('request', (request) => {
        if (request.url().includes('/v1/')) tokens.push(request.headers()['x-consul-token']);
      });
      await page.goto(`${url}/ui/#token=root`);
      await page.locator('[data-instance="users-1"]').waitFor({ state: 'visible', timeout: 10_000 });
      expect(tokens.length).toBeGreaterThan(0);
      expect(new Set(tokens)).toEqual(new Set(['root']));
    } finally {
      await context.close();
    }
  });
});
