import { type Browser, type BrowserContext, type Locator, type Page, type Route } from 'playwright-core';
import { ManualClock } from '@trellis/core';
import { RegistryServer } from '@trellis/registry-server';
import { put } from './helpers.js';
import { describeWithChromium, launchHeadlessChromium } from './headless-chromium.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

// The dashboard at /ui/, driven in Debian's headless Chromium (.ci/run installs it).
describeWithChromium('dashboard', () => {
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let server: RegistryServer;
  let url: string;
  /** Every URL the page asked for, to check that it never leaves the server's origin. */
  let requested: string[];
  let dialogs: string[];

  beforeAll(async () => {
    browser = await launchHeadlessChromium();
  }, 60_000);
  afterAll(async () => {
    await browser.close();
  });

  beforeEach(async () => {
    // A manual clock: TTLs never run out by themselves, so every status change is the test's.
    server = new RegistryServer({
      logLevel: 'silent',
      clock: new ManualClock(),
      nodeName: 'node-<1>&"a"',
      datacenter: 'dc-test',
    });
    ({ url } = await server.listen({ port: 0, host: '127.0.0.1' }));
    context = await browser.newContext();
    page = await context.newPage();
    requested = [];
    dialogs = [];
    page.on('request', (request) => requested.push(request.url()));
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
  });
  afterEach(async () => {
    // The page first: it holds blocking queries that would otherwise retry against a closed server.
    await context.close();
    await server.close();
  });

  const shown = (locator: Locator): Promise<void> => locator.waitFor({ state: 'visible', timeout: 10_000 });
  const gone = (locator: Locator): Promise<void> => locator.waitFor({ state: 'detached', timeout: 10_000 });
  const text = async (locator: Locator): Promise<string> => ((await locator.textContent()) ?? '').trim();

  it('shows an instance registered after the page loaded, its check failing with the note, and its deregistration, without reloading', async () => {
    await page.goto(`${url}/ui/`);
    await shown(page.getByRole('heading', { level: 1, name: 'Trellis registry' }));
    expect(await text(page.locator('[data-node]'))).toBe('node-<1>&"a"');
    expect(await text(page.locator('[data-datacenter]'))).toBe('dc-test');
    await shown(page.locator('[data-empty="services"]'));
    // Survives only as long as the page is not reloaded.
    await page.evaluate(() => Object.assign(globalThis, { notReloaded: true }));

    const registered = await put(
      `${url}/v1/agent/service/register`,
      JSON.stringify({
        Name: 'users',
        ID: 'users-1',
        Address: '10.0.0.5',
        Port: 8080,
        Tags: ['v1', '<b>bold</b>'],
        Meta: { version: '1.2.3', owner: '<img src=x onerror=alert(1)>' },
        Check: { TTL: '30s', Status: 'passing' },
      }),
    );
    expect(registered.status).toBe(200);

    const service = page.locator('[data-service="users"]');
    const instance = service.locator('[data-instance="users-1"]');
    await shown(instance.and(page.locator('[data-status="passing"]')));
    await shown(service.getByRole('heading', { level: 3, name: /users/ }));
    expect(await text(instance.locator('[data-address]'))).toBe('10.0.0.5:8080');
    expect(await instance.locator('[data-tag]').allTextContents()).toEqual(['v1', '<b>bold</b>']);
    expect(await text(instance.locator('[data-meta="owner"]'))).toBe('<img src=x onerror=alert(1)>');
    expect(await text(instance.locator('[data-meta="version"]'))).toBe('1.2.3');
    expect(await text(instance.locator('[data-status-word]').first())).toBe('passing');
    expect(await page.locator('img, b').count()).toBe(0);
    expect(await text(page.locator('[data-count="services"]'))).toBe('1');
    expect(await text(page.locator('[data-count="instances"]'))).toBe('1');
    expect(await text(page.locator('[data-count="passing"]'))).toBe('1');
    expect(await page.locator('[data-empty="services"]').isHidden()).toBe(true);
    expect(await page.locator('[data-last-updated]').getAttribute('datetime')).toMatch(/^\d{4}-\d\d-\d\dT/);

    const note = 'disk full: <script>alert(2)</script>';
    const failed = await put(`${url}/v1/agent/check/fail/service:users-1?note=${encodeURIComponent(note)}`);
    expect(failed.status).toBe(200);
    await shown(instance.and(page.locator('[data-status="critical"]')));
    const check = instance.locator('tr[data-check="service:users-1"]');
    expect(await check.getAttribute('data-status')).toBe('critical');
    expect(await text(check.locator('[data-status-word]'))).toBe('critical');
    expect(await text(check.locator('[data-output]'))).toBe(note);
    expect(await text(instance.locator('.instance-head [data-status-word]'))).toBe('critical');
    expect(await text(page.locator('[data-count="critical"]'))).toBe('1');
    expect(await text(page.locator('[data-count="passing"]'))).toBe('0');

    expect((await put(`${url}/v1/agent/service/deregister/users-1`)).status).toBe(200);
    await gone(service);
    await shown(page.locator('[data-empty="services"]'));
    expect(await text(page.locator('[data-count="services"]'))).toBe('0');

    expect(await page.evaluate(() => (globalThis as { notReloaded?: boolean }).notReloaded)).toBe(true);
    expect(dialogs).toEqual([]);
    expect(requested.filter((u) => !u.startsWith(`${url}/`))).toEqual([]);
    expect(await text(page.locator('[data-connection]'))).toMatch(/^Live/);
  });

  it("follows the server's own KV store live: a key written appears, a key deleted goes", async () => {
    await page.goto(`${url}/ui/`);
    await shown(page.getByText('No keys yet.'));
    expect((await put(`${url}/v1/kv/config/users/timeout`, '5s')).status).toBe(200);
    const row = page.locator('[data-kv] [data-key="config/users/timeout"]');
    await shown(row);
    expect(await text(row.locator('[data-value]'))).toBe('5s');
    await shown(page.locator('[data-kv] [data-kv-folder="config/users/"]'));
    expect(await text(page.locator('[data-count="keys"]'))).toBe('1');

    const deleted = await fetch(`${url}/v1/kv/config/users/timeout`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    await gone(row);
    await shown(page.getByText('No keys yet.'));
    expect(await text(page.locator('[data-count="keys"]'))).toBe('0');
  });

  it('shows the KV tree from GET /v1/kv/?recurse, follows its changes, and shows an empty store for a 404', async () => {
    // KV is written against Consul's contract: a list of entries with base64 values, or a 404
    // with an empty body (and an index) when there are no keys.
    const b64 = (bytes: string | Uint8Array): string => Buffer.from(bytes).toString('base64');
    const entry = (key: string, value: string | null, modifyIndex: number): Record<string, unknown> => ({
      Key: key,
      Value: value,
      Flags: key.startsWith('flags/') ? 42 : 0,
      CreateIndex: modifyIndex,
      ModifyIndex: modifyIndex,
      LockIndex: 0,
    });
    const answers = [
      {
        status: 200,
        index: 7,
        body: JSON.stringify([
          entry('config/users/timeout', b64('5s'), 7),
          entry('config/mail/', null, 5),
          entry('flags/<img src=x onerror=alert(3)>', b64(new Uint8Array([0xff, 0xfe])), 6),
        ]),
      },
      {
        status: 200,
        index: 8,
        body: JSON.stringify([entry('config/users/retries', b64('3'), 8), entry('config/users/timeout', b64('5s'), 7)]),
      },
      { status: 404, index: 9, body: '' },
    ];
    const asked: string[] = [];
    // arrived[n] resolves when request n comes; release[n] lets its answer go.
    const arrived = answers.map(() => deferred());
    const release = answers.map(() => deferred());
    await page.route(
      (u) => u.pathname === '/v1/kv/',
      async (route) => {
        const n = asked.push(route.request().url()) - 1;
        const answer = answers[n];
        // Past the last answer, held like a blocking query until the page closes.
        if (answer === undefined) return;
        arrived[n]?.resolve();
        if (n > 0) await release[n]?.promise;
        await route.fulfill({
          status: answer.status,
          headers: { 'X-Consul-Index': String(answer.index), 'Content-Type': 'application/json' },
          body: answer.body,
        });
      },
    );

    await page.goto(`${url}/ui/`);
    const table = page.getByRole('table', { name: 'Keys and values' });
    await shown(table.locator('[data-key="config/users/timeout"]'));
    const rows = await table.locator('tbody tr').all();
    const rowKeys = await Promise.all(
      rows.map(async (row) => (await row.getAttribute('data-kv-folder')) ?? (await row.getAttribute('data-key'))),
    );
    expect(rowKeys).toEqual([
      'config/',
      'config/mail/',
      'config/users/',
      'config/users/timeout',
      'flags/',
      'flags/<img src=x onerror=alert(3)>',
    ]);
    expect(await text(table.locator('[data-key="config/users/timeout"] [data-value]'))).toBe('5s');
    const binary = table.locator('[data-key="flags/<img src=x onerror=alert(3)>"]');
    expect(await text(binary.locator('[data-value]'))).toBe('(2 bytes of binary data)');
    expect(await text(binary.locator('td').first())).toBe('<img src=x onerror=alert(3)>');
    expect(await text(binary.locator('td').nth(2))).toBe('42');
    expect(await text(page.locator('[data-count="keys"]'))).toBe('3');
    expect(await page.locator('img').count()).toBe(0);

    await arrived[1]?.promise;
    expect(asked[1]).toContain('index=7');
    release[1]?.resolve();
    await shown(table.locator('[data-key="config/users/retries"]'));
    await gone(table.locator('[data-kv-folder="flags/"]'));
    expect(await text(page.locator('[data-count="keys"]'))).toBe('2');

    await arrived[2]?.promise;
    expect(asked[2]).toContain('index=8');
    release[2]?.resolve();
    await shown(page.getByText('No keys yet.'));
    expect(await page.locator('[data-kv]').isHidden()).toBe(true);
    expect(await text(page.locator('[data-count="keys"]'))).toBe('0');
    expect(dialogs).toEqual([]);
    await page.unrouteAll({ behavior: 'ignoreErrors' });
  });

  it('backs off exponentially when the server answers errors, and recovers', async () => {
    // The page's timers run on Playwright's fake clock: a retry can only happen when it advances.
    // pauseAt stops time from flowing by itself, as it does after install().
    const start = Date.parse('2030-01-01T00:00:00Z');
    await page.clock.install({ time: start });
    await page.clock.pauseAt(start + 1_000);
    let failures = 0;
    const catalogServices = (u: URL): boolean => u.pathname === '/v1/catalog/services';
    await page.route(catalogServices, async (route) => {
      failures += 1;
      await route.fulfill({ status: 500, contentType: 'text/plain', body: 'internal error' });
    });
    const retried = (): Promise<unknown> =>
      page.waitForRequest((r) => new URL(r.url()).pathname === '/v1/catalog/services', { timeout: 10_000 });

    await page.goto(`${url}/ui/`);
    const connection = page.locator('[data-connection="retrying"]');
    await shown(connection);
    expect(await text(connection)).toContain('internal error');
    expect(failures).toBe(1);

    await page.clock.runFor(999);
    expect(failures).toBe(1);
    let next = retried();
    await page.clock.runFor(1);
    await next;
    await shown(page.getByText(/retrying in 2 s/));
    expect(failures).toBe(2);

    await page.clock.runFor(1_999);
    expect(failures).toBe(2);
    next = retried();
    await page.clock.runFor(1);
    await next;
    await shown(page.getByText(/retrying in 4 s/));
    expect(failures).toBe(3);

    // The server recovers: the next retry gets a real answer and the page is live again.
    await page.unroute(catalogServices);
    await put(`${url}/v1/agent/service/register`, JSON.stringify({ Name: 'mail', ID: 'mail-1', Port: 25 }));
    await page.clock.runFor(4_000);
    await shown(page.locator('[data-service="mail"] [data-instance="mail-1"]'));
    await shown(page.locator('[data-connection="live"]'));
    expect(failures).toBe(3);
  });

  it('redirects / to /ui/ with a 301, as Consul does, and serves the page as uncached HTML', async () => {
    const root = await fetch(`${url}/`, { redirect: 'manual' });
    expect(root.status).toBe(301);
    expect(root.headers.get('location')).toBe('/ui/');

    for (const path of ['/ui', '/ui/']) {
      const res = await fetch(`${url}${path}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.headers.get('content-security-policy')).toContain("connect-src 'self'");
      const html = await res.text();
      expect(html).toMatch(/^<!doctype html>/);
      expect(html).toContain('node-&#60;1&#62;&#38;&#34;a&#34;');
      // Self-contained: no URL of another origin anywhere in the page.
      expect(html).not.toMatch(/https?:/);
      // The one URL is the favicon's, on this server; style and script are inline.
      expect(html.match(/\b(?:src|href|action)=\S*/g)).toEqual(['href="/ui/favicon.svg"']);
    }

    expect((await fetch(`${url}/ui/`, { method: 'POST', body: '' })).status).toBe(405);
    const missing = await fetch(`${url}/ui/nothing-here`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toBe('404 page not found');

    // A browser following the redirect lands on the dashboard.
    await page.goto(`${url}/`);
    expect(page.url()).toBe(`${url}/ui/`);
    await shown(page.getByRole('heading', { level: 2, name: 'Services' }));
    await shown(page.getByRole('heading', { level: 2, name: 'Key/value store' }));
  });

  it('says "Loading" until the first answers arrive, never "0 instances", and loads its favicon with no failed request, console error or CSP violation', async () => {
    expect(
      (
        await put(
          `${url}/v1/agent/service/register`,
          JSON.stringify({ Name: 'users', ID: 'users-1', Port: 8080, Check: { TTL: '30s', Status: 'passing' } }),
        )
      ).status,
    ).toBe(200);
    // A key too: an empty store is Consul's 404 on /v1/kv/?recurse, which Chromium logs as an error.
    expect((await put(`${url}/v1/kv/config/users/timeout`, '5s')).status).toBe(200);
    const failed: string[] = [];
    const refused: string[] = [];
    const consoleErrors: string[] = [];
    page.on('requestfailed', (r) => failed.push(`${r.url()} ${r.failure()?.errorText ?? ''}`));
    page.on('response', (r) => {
      if (r.status() >= 400) refused.push(`${r.status()} ${r.url()}`);
    });
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    // Added by Playwright before the page's own script, and not subject to its CSP.
    await page.addInitScript(() => {
      // The browser's document, typed here as far as used (the tests compile without DOM types).
      type Violation = { effectiveDirective: string; blockedURI: string };
      const { document } = globalThis as unknown as {
        document: { addEventListener(type: 'securitypolicyviolation', listener: (e: Violation) => void): void };
      };
      const violations: string[] = [];
      Object.assign(globalThis, { violations });
      document.addEventListener('securitypolicyviolation', (e) =>
        violations.push(`${e.effectiveDirective} ${e.blockedURI}`),
      );
    });
    // The first catalog and health requests are held (in the browser) until the test lets them go.
    const held = new Map<string, { arrived: ReturnType<typeof deferred>; release: ReturnType<typeof deferred> }>();
    for (const path of ['/v1/catalog/services', '/v1/health/service/users']) {
      const gate = { arrived: deferred(), release: deferred() };
      held.set(path, gate);
      let first = true;
      await page.route(
        (u) => u.pathname === path,
        async (route) => {
          if (first) {
            first = false;
            gate.arrived.resolve();
            await gate.release.promise;
          }
          await route.continue();
        },
      );
    }
    const favicon = page.waitForResponse((r) => new URL(r.url()).pathname === '/ui/favicon.svg', { timeout: 10_000 });

    await page.goto(`${url}/ui/`);
    await held.get('/v1/catalog/services')?.arrived.promise;
    const summary = page.locator('[data-summary]');
    expect(await summary.getAttribute('data-state')).toBe('loading');
    expect((await summary.innerText()).trim()).toBe('Loading…');
    expect(await page.locator('[data-counts]').isHidden()).toBe(true);
    expect(await text(page.locator('[data-services-note]'))).toBe('Loading services…');
    expect(await page.locator('[data-empty="services"]').isHidden()).toBe(true);
    expect(await page.locator('body').innerText()).not.toMatch(/\b0 (services|instances)\b/);

    const icon = await favicon;
    expect(icon.status()).toBe(200);
    expect(icon.headers()['content-type']).toBe('image/svg+xml');
    expect((await icon.body()).toString('utf8')).toMatch(/^<svg /);

    // The catalog answers; the service's health is still held: its count is not a guess either.
    held.get('/v1/catalog/services')?.release.resolve();
    const service = page.locator('[data-service="users"]');
    await shown(service.getByText('Loading instances…'));
    await held.get('/v1/health/service/users')?.arrived.promise;
    expect(await summary.getAttribute('data-state')).toBe('done');
    expect(await text(page.locator('[data-count="services"]'))).toBe('1');
    expect(await text(page.locator('[data-count="instances"]'))).toBe('…');
    expect(await page.locator('[data-services-note]').isHidden()).toBe(true);
    expect(await page.locator('body').innerText()).not.toMatch(/\b0 instances\b/);

    held.get('/v1/health/service/users')?.release.resolve();
    await shown(service.locator('[data-instance="users-1"][data-status="passing"]'));
    expect(await text(page.locator('[data-count="instances"]'))).toBe('1');
    expect(await text(page.locator('[data-count="passing"]'))).toBe('1');
    await shown(page.locator('[data-kv] [data-key="config/users/timeout"]'));
    await shown(page.locator('[data-connection="live"]'));

    expect(failed).toEqual([]);
    expect(refused).toEqual([]);
    expect(consoleErrors).toEqual([]);
    expect(await page.evaluate(() => (globalThis as unknown as { violations: string[] }).violations)).toEqual([]);
    expect(dialogs).toEqual([]);
    await page.unrouteAll({ behavior: 'ignoreErrors' });
  });

  it('says what failed, instead of "Loading", when the API fails before its first answer, and loads once it answers', async () => {
    expect((await put(`${url}/v1/agent/service/register`, JSON.stringify({ Name: 'mail', ID: 'mail-1' }))).status).toBe(
      200,
    );
    // Retries only happen when the test advances the page's clock.
    const start = Date.parse('2030-01-01T00:00:00Z');
    await page.clock.install({ time: start });
    await page.clock.pauseAt(start + 1_000);
    const failing = (path: string) => (u: URL) => u.pathname === path;
    const fail = async (route: Route): Promise<void> =>
      route.fulfill({ status: 500, contentType: 'text/plain', body: 'internal error' });
    const catalog = failing('/v1/catalog/services');
    const health = failing('/v1/health/service/mail');
    const kv = failing('/v1/kv/');
    for (const path of [catalog, health, kv]) await page.route(path, fail);

    await page.goto(`${url}/ui/`);
    const servicesNote = page.locator('[data-services-note][data-state="error"]');
    await shown(servicesNote);
    expect(await text(servicesNote)).toBe('Could not load the services (HTTP 500: internal error).');
    const summary = page.locator('[data-summary][data-state="error"]');
    await shown(summary);
    expect((await summary.innerText()).trim()).toBe('Could not load the services.');
    const kvNote = page.locator('[data-kv-note][data-state="error"]');
    await shown(kvNote);
    expect(await text(kvNote)).toBe('Could not load the key/value store (HTTP 500: internal error).');
    expect(await page.locator('body').innerText()).not.toMatch(/Loading|\b0 (services|instances)\b|No keys yet/);

    // The catalog recovers; the service's health still fails: its section says so.
    await page.unroute(catalog);
    await page.clock.runFor(1_000);
    const section = page.locator('[data-service="mail"]');
    await shown(section.locator('[data-state="error"]'));
    expect(await text(section.locator('[data-state="error"]'))).toBe(
      'Could not load its instances (HTTP 500: internal error).',
    );
    expect(await text(page.locator('[data-count="services"]'))).toBe('1');
    expect(await text(page.locator('[data-count="instances"]'))).toBe('…');

    await page.unroute(health);
    await page.unroute(kv);
    await page.clock.runFor(4_000);
    await shown(section.locator('[data-instance="mail-1"]'));
    await shown(page.getByText('No keys yet.'));
    expect(await section.locator('[data-state="error"]').count()).toBe(0);
    expect(await text(page.locator('[data-count="instances"]'))).toBe('1');
    await shown(page.locator('[data-connection="live"]'));
  });
});
