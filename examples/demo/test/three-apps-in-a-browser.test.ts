import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import {
  describeWithChromium,
  launchHeadlessChromium,
} from '../../../packages/registry-server/test/headless-chromium.js';
import { startSystem, type RunningSystem } from '../src/system.js';

// The example system as a person uses it: two people in two browser contexts (their own
// cookies), every page through the gateway. The chaos run does the same while one users and one
// mail instance are killed with SIGKILL halfway: what the people see must not change.

const step = 15_000;

/** A person at a browser: a context of their own (cookies, so their own session) and one page. */
interface Person {
  readonly name: string;
  readonly context: BrowserContext;
  readonly page: Page;
  /** Every message the pages showed in their error box, with the URL of the page. */
  readonly errors: string[];
}

async function person(browser: Browser, name: string): Promise<Person> {
  const context = await browser.newContext();
  context.setDefaultTimeout(step);
  const page = await context.newPage();
  const errors: string[] = [];
  // The pages show every failure in one box (data-testid="error"); whatever it ever said counts.
  await page.exposeFunction('__pageError', (text: string) => errors.push(`${page.url()}: ${text}`));
  // (Scripts for the page are strings: the tests compile without the DOM's types.)
  await context.addInitScript(`
    new MutationObserver(() => {
      const box = document.querySelector('[data-testid="error"]');
      const text = box?.textContent?.trim();
      if (box !== null && !box.hidden && text) window.__pageError(text);
    }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
  `);
  return { name, context, page, errors };
}

async function signUp(gateway: string, who: Person): Promise<void> {
  await who.page.goto(`${gateway}/`);
  await who.page.getByTestId('signup-name').fill(who.name);
  await who.page.getByTestId('signup-password').fill(`${who.name}-secret-1`);
  await who.page.getByTestId('signup-submit').click();
  await expect(who.page.getByTestId('welcome-name')).toHaveTextOrThrow(who.name);
}

// A tiny stand-in for Playwright Test's web-first assertions, which Jest lacks.
declare module 'expect' {
  interface Matchers<R> {
    toHaveTextOrThrow(text: string): Promise<R>;
  }
}
expect.extend({
  async toHaveTextOrThrow(locator: ReturnType<Page['getByTestId']>, text: string) {
    await locator.filter({ hasText: text }).first().waitFor({ state: 'visible' });
    return { pass: true, message: () => `${String(locator)} shows "${text}"` };
  },
});

/** The whole story: sign up, post and reply, chat, and find the notification mail. */
async function story(gateway: string, ada: Person, grace: Person, midway: () => Promise<void>): Promise<void> {
  await signUp(gateway, ada);
  await signUp(gateway, grace);

  // Ada starts a thread on the general board.
  await ada.page.goto(`${gateway}/forum/#/boards/general`);
  await ada.page.getByTestId('thread-title').fill('Analytical engines');
  await ada.page.getByTestId('thread-body').fill('Who has seen one weave algebraic patterns?');
  await ada.page.getByTestId('thread-submit').click();
  await expect(ada.page.getByTestId('thread-view-title')).toHaveTextOrThrow('Analytical engines');
  const threadUrl = ada.page.url();
  expect(threadUrl).toMatch(/#\/threads\/\w+/);

  await midway();

  // Grace replies; the forum mails Ada through the mail service.
  await grace.page.goto(threadUrl);
  await expect(grace.page.getByTestId('thread-view-author')).toHaveTextOrThrow(ada.name);
  await grace.page.getByTestId('reply-input').fill('I have, in relay 70.');
  await grace.page.getByTestId('reply-submit').click();
  await expect(grace.page.getByTestId('reply-body')).toHaveTextOrThrow('I have, in relay 70.');

  // Both in #general, over WebSockets through the gateway.
  await ada.page.goto(`${gateway}/chat/#general`);
  await grace.page.goto(`${gateway}/chat/#general`);
  for (const who of [ada, grace]) await expect(who.page.getByTestId('chat-status')).toHaveTextOrThrow('connected');
  await expect(ada.page.getByTestId('presence-user')).toHaveTextOrThrow(grace.name);
  await ada.page.getByTestId('message-input').fill('Hello Grace');
  await ada.page.getByTestId('message-send').click();
  await expect(grace.page.getByTestId('message-text')).toHaveTextOrThrow('Hello Grace');
  await grace.page.getByTestId('message-input').fill('Hello Ada');
  await grace.page.getByTestId('message-send').click();
  await expect(ada.page.getByTestId('message-text')).toHaveTextOrThrow('Hello Ada');

  // Ada leaves the room; a mention of her is mailed, since she is not there to read it.
  await ada.page.goto(`${gateway}/mail/`);
  await expect(grace.page.getByTestId('presence-user')).toHaveTextOrThrow(grace.name);
  await grace.page.waitForFunction(
    `![...document.querySelectorAll('[data-testid="presence-user"]')].some((e) => e.textContent === ${JSON.stringify(ada.name)})`,
  );
  await grace.page.getByTestId('message-input').fill(`@${ada.name} the thread has a reply`);
  await grace.page.getByTestId('message-send').click();
  await expect(grace.page.getByTestId('notice')).toHaveTextOrThrow('mailed');

  // Ada's mailbox has both notifications: the reply (from the forum) and the mention (from chat).
  await ada.page.getByTestId('mailbox-refresh').click();
  await expect(ada.page.getByTestId('mail-subject')).toHaveTextOrThrow(`${grace.name} replied to "Analytical engines"`);
  await expect(ada.page.getByTestId('mail-subject')).toHaveTextOrThrow(`${grace.name} mentioned you in #general`);
  await ada.page.getByTestId('mail-subject').filter({ hasText: 'mentioned you' }).click();
  await expect(ada.page.getByTestId('mail-view-body')).toHaveTextOrThrow('the thread has a reply');
}

/** The retries (failovers included) that the callers of users and mail made, from their /metrics. */
async function retriesToUsersAndMail(callers: readonly string[]): Promise<number> {
  let total = 0;
  for (const url of callers) {
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const line of text.split('\n')) {
      if (/^trellis_retries_total\{[^}]*service="(users|mail)"/.test(line)) total += Number(line.split(' ').pop());
    }
  }
  return total;
}

async function tryStory(chaos: boolean): Promise<{ errors: string[]; killed: string[]; retries: number }> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'trellis-e2e-'));
  const logs: string[] = [];
  let system: RunningSystem | undefined;
  let browser: Browser | undefined;
  try {
    system = await startSystem({ dataDir, drainMs: 300, output: (line) => logs.push(line) });
    browser = await launchHeadlessChromium();
    const stamp = Date.now().toString(36).slice(-4);
    const ada = await person(browser, `ada-${stamp}`);
    const grace = await person(browser, `grace-${stamp}`);
    const killed: string[] = [];
    const running = system;
    await story(system.gateway!.url, ada, grace, async () => {
      if (!chaos) return;
      // No deregistration: the registry lists them as passing until their TTL runs out, so
      // callers keep picking them for a while and must fail over.
      for (const victim of [running.users[0]!, running.mail[0]!]) {
        expect(await victim.stop('SIGKILL')).toBe('SIGKILL');
        killed.push(victim.name);
      }
    });
    const callers = [system.gateway!, system.forum!, system.chat!].map((p) => p.url);
    return { errors: [...ada.errors, ...grace.errors], killed, retries: await retriesToUsersAndMail(callers) };
  } catch (error) {
    // The services' own lines say why a step failed.
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${logs.slice(-40).join('\n')}`);
  } finally {
    await browser?.close();
    await system?.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

describeWithChromium('the forum, the chat and the mailbox in a browser, through the gateway', () => {
  it('two people sign up, post and reply, chat, and find the notification mail', async () => {
    const { errors, retries } = await tryStory(false);
    expect(errors).toEqual([]);
    expect(retries).toBe(0);
  }, 120_000);

  it('the same, while one users and one mail instance are killed with SIGKILL midway', async () => {
    const { errors, killed, retries } = await tryStory(true);
    expect(killed).toEqual(['users-1', 'mail-1']);
    expect(errors).toEqual([]);
    // The kills were felt: callers picked the dead instances and went on to the live ones.
    expect(retries).toBeGreaterThan(0);
  }, 120_000);
});

describeWithChromium('bad input and a service that is down, on the pages', () => {
  let dataDir: string;
  let system: RunningSystem;
  let browser: Browser;
  let ada: Person;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'trellis-e2e-'));
    system = await startSystem({ dataDir, drainMs: 300, output: () => undefined });
    browser = await launchHeadlessChromium();
    ada = await person(browser, 'ada');
    await signUp(system.gateway!.url, ada);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await system?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('a taken user name is said on the page, from users\u2019 400', async () => {
    const other = await person(browser, 'ada');
    await other.page.goto(`${system.gateway!.url}/`);
    await other.page.getByTestId('signup-name').fill('ada');
    await other.page.getByTestId('signup-password').fill('another-secret');
    await other.page.getByTestId('signup-submit').click();
    await expect(other.page.getByTestId('error')).toHaveTextOrThrow('taken');
    // What the other tests count on: a message in the error box is seen.
    expect(other.errors.join('\n')).toContain('taken');
    await other.context.close();
  }, 30_000);

  it('an empty or over-long field is said on the page, and nothing is posted', async () => {
    const gateway = system.gateway!.url;
    await ada.page.goto(`${gateway}/forum/#/boards/general`);
    await ada.page.getByTestId('thread-title').fill('x'.repeat(500));
    await ada.page.getByTestId('thread-body').fill('too long a title');
    // The browser's own maxlength would stop the form before the service: taken off, so that the
    // service's 400 is what the page shows.
    await ada.page.evaluate(`
      for (const input of document.querySelectorAll('input, textarea')) {
        for (const name of ['maxlength', 'minlength', 'required']) input.removeAttribute(name);
      }
    `);
    await ada.page.getByTestId('thread-submit').click();
    await expect(ada.page.getByTestId('error')).toHaveTextOrThrow('title');
    const threads = await (await fetch(`${gateway}/api/forum/boards/general/threads`)).json();
    expect(JSON.stringify(threads)).not.toContain('too long a title');
  }, 30_000);

  it('HTML and script in a post and a chat line are shown as typed, never run', async () => {
    const gateway = system.gateway!.url;
    const hostile = '<img src=x onerror="window.__ran=1"><script>window.__ran=2</script>';
    await ada.page.goto(`${gateway}/forum/#/boards/general`);
    await ada.page.getByTestId('thread-title').fill(hostile);
    await ada.page.getByTestId('thread-body').fill(hostile);
    await ada.page.getByTestId('thread-submit').click();
    await expect(ada.page.getByTestId('thread-view-body')).toHaveTextOrThrow(hostile);
    expect(await ada.page.getByTestId('thread-view-title').textContent()).toBe(hostile);
    await ada.page.reload();
    await expect(ada.page.getByTestId('thread-view-body')).toHaveTextOrThrow(hostile);
    await ada.page.goto(`${gateway}/forum/#/boards/general`);
    await expect(ada.page.getByTestId('thread-link')).toHaveTextOrThrow(hostile);

    await ada.page.goto(`${gateway}/chat/#general`);
    await expect(ada.page.getByTestId('chat-status')).toHaveTextOrThrow('connected');
    await ada.page.getByTestId('message-input').fill(hostile);
    await ada.page.getByTestId('message-send').click();
    await expect(ada.page.getByTestId('message-text')).toHaveTextOrThrow(hostile);
    await ada.page.reload();
    await expect(ada.page.getByTestId('message-text')).toHaveTextOrThrow(hostile);
    expect(await ada.page.evaluate('window.__ran')).toBeUndefined();
    expect(await ada.page.locator('img[src="x"], [data-testid="messages"] script').count()).toBe(0);
  }, 30_000);

  it('a service that is down is a message on the page, not a broken page', async () => {
    const gateway = system.gateway!.url;
    await ada.page.goto(`${gateway}/forum/`);
    await ada.page.getByTestId('board-link').first().waitFor();
    await system.forum!.stop();
    // The page is up, its API is not: the error box says which service is missing.
    await ada.page.getByTestId('board-link').first().click();
    await expect(ada.page.getByTestId('error')).toHaveTextOrThrow('forum');
    expect(ada.errors.at(-1)).toMatch(/forum/);
    // Loading the page itself: the gateway's page, saying what is down, instead of JSON.
    const response = await ada.page.goto(`${gateway}/forum/`);
    expect(response?.status()).toBe(503);
    await expect(ada.page.getByTestId('unavailable-title')).toHaveTextOrThrow('The forum service is unavailable');
    // Everything else goes on.
    await ada.page.goto(`${gateway}/`);
    await expect(ada.page.getByTestId('welcome-name')).toHaveTextOrThrow('ada');
  }, 30_000);
});
