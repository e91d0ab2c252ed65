import { type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { ManualClock } from '@trellis/core';
import { MemoryRegistry } from '@trellis/registry';
import { TrellisApp, type AppOptions } from '@trellis/app';
import { describeWithChromium, launchHeadlessChromium } from '../../registry-server/test/headless-chromium.js';

const hostile = '<img src=x onerror=alert(1)>';

// The /trellis page as a person sees it, driven in Debian's headless Chromium (.ci/run installs
// it), over two real apps: users (two instances, users-a can be made to fail) and a forum
// calling users. The apps run on a manual clock, so a breaker stays open until the test moves it.
describeWithChromium('the /trellis page', () => {
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let clock: ManualClock;
  let registry: MemoryRegistry;
  const apps: TrellisApp[] = [];
  let dialogs: string[];
  let problems: string[];

  beforeAll(async () => {
    browser = await launchHeadlessChromium();
  }, 60_000);
  afterAll(async () => {
    await browser.close();
  });

  beforeEach(async () => {
    clock = new ManualClock(1_700_000_000_000);
    registry = new MemoryRegistry({ clock });
    context = await browser.newContext();
    page = await context.newPage();
    dialogs = [];
    problems = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('requestfailed', (r) => problems.push(`${r.url()} ${r.failure()?.errorText ?? ''}`));
  });
  afterEach(async () => {
    await context.close();
    await Promise.all(apps.splice(0).map((a) => a.close()));
    await registry.close();
  });

  function app(options: Partial<AppOptions> & { service: string }): TrellisApp {
    const created = new TrellisApp({ registry, clock, logLevel: 'silent', drainMs: 0, ...options });
    apps.push(created);
    return created;
  }

  async function system() {
    const failing = { a: false };
    for (const name of ['a', 'b'] as const) {
      const u = app({ service: 'users', instanceId: `users-${name}`, tags: [hostile], labels: { owner: hostile } });
      u.http.get('/users/:id', async (request, reply) => {
        if (name === 'a' && failing.a) return reply.code(503).send({ error: 'overloaded' });
        return { id: (request.params as { id: string }).id };
      });
      await u.start();
    }
    const forum = app({
      service: 'forum',
      calls: ['users'],
      tags: ['web', `${hostile}-own`],
      labels: { note: `${hostile}-note` },
      client: { strategy: 'round-robin', retry: { random: () => 0 } },
      breaker: { minimumCalls: 3, failureRateThreshold: 0.5, resetTimeoutMs: 30_000 },
    });
    forum.http.get('/posts/:id', async (request) =>
      forum.client('users').get(`/users/${(request.params as { id: string }).id}`),
    );
    const { url } = await forum.start();
    const calls = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) expect((await fetch(`${url}/posts/${i}`)).status).toBe(200);
    };
    return { failing, url, calls };
  }

  const shown = (locator: Locator): Promise<void> => locator.waitFor({ state: 'visible', timeout: 10_000 });
  const text = async (locator: Locator): Promise<string> => ((await locator.textContent()) ?? '').trim();

  it('shows the client, its instances and their breakers, follows a breaker opening without reloading, and shows registry values as text', async () => {
    const { failing, url, calls } = await system();
    // The page's timers run on Playwright's clock, paused: it polls only when the test moves it.
    const start = Date.parse('2030-01-01T00:00:00Z');
    await page.clock.install({ time: start });
    await page.clock.pauseAt(start + 1_000);
    const polls: string[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/trellis' && r.resourceType() === 'fetch')
        polls.push(r.headers()['accept'] ?? '');
    });
    const response = await page.goto(`${url}/trellis`);
    expect(response?.headers()['content-type']).toBe('text/html; charset=utf-8');
    await shown(page.getByRole('heading', { level: 1, name: 'Trellis · forum' }));
    const users = page.locator('[data-client="users"]');
    await shown(users.getByRole('heading', { level: 3, name: 'users' }));
    // Declared, not called yet: discovery has not looked users up.
    expect(await text(users.locator('[data-discovery]'))).toBe('Not called yet: discovery has not looked it up.');
    expect(polls).toEqual(['application/json']);

    // Two calls, then the next poll shows users' instances.
    await calls(2);
    await page.clock.runFor(2_000);
    await shown(users.locator('tr[data-instance="users-b"]'));
    expect(polls).toHaveLength(2);
    expect(await text(users.locator('[data-strategy]'))).toBe('round-robin');
    expect(await users.locator('[data-stage]').allTextContents()).toEqual([
      'trace',
      'deadline',
      'retry',
      'hedging',
      'select',
      'trace-attempt',
      'breaker',
      'attempt-timeout',
      'fault-injection',
      'transport',
    ]);
    expect(await text(users.locator('[data-retry-budget]'))).toBe('100 retries left in the budget');
    expect(await text(users.locator('[data-reachable]'))).toBe('registry reachable');
    const a = users.locator('tr[data-instance="users-a"]');
    const b = users.locator('tr[data-instance="users-b"]');
    for (const row of [a, b]) {
      expect(await text(row.locator('[data-health]'))).toBe('passing');
      expect(await row.locator('[data-breaker]').getAttribute('data-state')).toBe('closed');
      expect(await text(row.locator('[data-calls]'))).toBe('1');
      expect(await text(row.locator('[data-address]'))).toMatch(/^127\.0\.0\.1:\d+$/);
      // From the registry, that is from outside: shown as text, never as markup.
      expect(await text(row.locator('[data-tag]'))).toBe(hostile);
      expect(await text(row.locator('[data-meta="owner"]'))).toBe(`owner ${hostile}`);
    }
    expect(await page.locator('[data-own-instance] [data-tag]').allTextContents()).toEqual(['web', `${hostile}-own`]);
    expect(await text(page.locator('[data-own-instance] [data-meta="note"]'))).toBe(`note ${hostile}-note`);
    expect(await text(page.locator('[data-own-instance] [data-app-state]'))).toBe('running');
    expect(await text(page.locator('[data-registration-failures]'))).toBe('no failures');
    expect(await page.locator('img').count()).toBe(0);
    await shown(page.locator('[data-connection="live"]'));
    // Survives only as long as the page is not reloaded.
    await page.evaluate(() => Object.assign(globalThis, { notReloaded: true }));

    // users-a fails: its breaker opens at its second failure (2 of 3 calls in its window), and
    // the two retries on users-b spend more of the budget than 5 calls brought in.
    failing.a = true;
    await calls(3);
    expect(polls).toHaveLength(2);
    const polled = page.waitForResponse((r) => new URL(r.url()).pathname === '/trellis', { timeout: 10_000 });
    await page.clock.runFor(2_000);
    await polled;
    await shown(a.locator('[data-breaker][data-state="open"]'));
    expect(await text(a.locator('[data-breaker]'))).toBe('open (30 s left)');
    expect(await text(a.locator('[data-calls]'))).toBe('3 (2 failed)');
    expect(await b.locator('[data-breaker]').getAttribute('data-state')).toBe('closed');
    expect(await text(users.locator('[data-retry-budget]'))).toBe('99 retries left in the budget');
    expect(polls).toHaveLength(3);

    // Time moves on the apps' clock: the next poll shows the open duration running out.
    clock.advance(12_000);
    await page.clock.runFor(2_000);
    await shown(a.locator('[data-breaker]').getByText('open (18 s left)'));

    expect(await page.evaluate(() => (globalThis as { notReloaded?: boolean }).notReloaded)).toBe(true);
    expect(await page.locator('img').count()).toBe(0);
    expect(dialogs).toEqual([]);
    expect(problems).toEqual([]);
  });

  it('says so when a refresh fails, backs off, keeps what it last showed, and recovers', async () => {
    const { url, calls } = await system();
    const start = Date.parse('2030-01-01T00:00:00Z');
    await page.clock.install({ time: start });
    await page.clock.pauseAt(start + 1_000);
    await calls(1);
    await page.goto(`${url}/trellis`);
    await shown(page.locator('[data-connection="live"]'));
    await page.route(
      (u) => u.pathname === '/trellis',
      (route) => route.fulfill({ status: 503, contentType: 'text/plain', body: 'draining' }),
    );
    await page.clock.runFor(2_000);
    const retrying = page.locator('[data-connection="retrying"]');
    await shown(retrying);
    expect(await text(retrying)).toBe('Could not refresh (HTTP 503); retrying in 2 s.');
    await page.clock.runFor(2_000);
    await shown(retrying.getByText('retrying in 4 s'));
    await shown(page.locator('[data-client="users"] tr[data-instance="users-a"]'));
    await page.unrouteAll({ behavior: 'ignoreErrors' });
    await page.clock.runFor(4_000);
    await shown(page.locator('[data-connection="live"]'));
    // The 503s the test answered are the only console errors expected.
    expect(problems.filter((p) => !p.includes('503'))).toEqual([]);
  });

  it('answers a browser with the page and everyone else with JSON, as one self-contained document under a strict CSP', async () => {
    const { url } = await system();
    const html = await fetch(`${url}/trellis`, {
      headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' },
    });
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(html.headers.get('cache-control')).toBe('no-store');
    expect(html.headers.get('vary')).toContain('accept');
    const csp = html.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
    const body = await html.text();
    expect(body).toMatch(/^<!doctype html>/);
    expect(body).toContain('<title>Trellis: forum</title>');
    // Self-contained: no script, style or request of another origin.
    expect(body.match(/\b(?:src|action)=\S*/g)).toBeNull();

    for (const accept of [undefined, '*/*', 'application/json', 'text/html;q=0.5, application/json']) {
      const json = await fetch(`${url}/trellis`, accept === undefined ? {} : { headers: { accept } });
      expect(json.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(((await json.json()) as { service: string }).service).toBe('forum');
    }
  });
});
