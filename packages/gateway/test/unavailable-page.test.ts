import { echo, gatewaySystem } from './gateway-fixtures.js';

// A page route whose service is down: a browser gets a page saying so, an API client the JSON.
describe('a service that cannot answer', () => {
  const system = gatewaySystem();
  const html = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };

  it('is a page saying what is down to a browser loading a page, and JSON to everyone else', async () => {
    const { url } = await system.gateway({
      routes: [{ match: { pathPrefix: '/forum/' }, stripPrefix: true, service: 'no-such-service' }],
    });

    const page = await fetch(`${url}/forum/`, { headers: html });
    expect(page.status).toBe(503);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toBe("default-src 'none'; style-src 'unsafe-inline'");
    const text = await page.text();
    expect(text).toContain('The no-such-service service is unavailable right now');
    expect(text).toContain('<a href="/">home page</a>');

    const api = await fetch(`${url}/forum/threads`);
    expect(api.status).toBe(503);
    expect(await api.json()).toMatchObject({ error: 'NO_INSTANCES', service: 'no-such-service' });
    // A form post from a page is not a page load: its script reads the JSON message.
    const post = await fetch(`${url}/forum/threads`, { method: 'POST', headers: html, body: '{}' });
    expect(post.headers.get('content-type')).toMatch(/^application\/json/);
  });

  it('escapes what it repeats of the error', async () => {
    const { url } = await system.gateway({
      routes: [{ match: { pathPrefix: '/x/' }, service: 'users<script>' }],
    });
    const text = await (await fetch(`${url}/x/`, { headers: html })).text();
    expect(text).not.toContain('<script>');
    expect(text).toContain('users&lt;script&gt;');
  });

  it('leaves an answering service alone, whatever the browser accepts', async () => {
    await system.service('forum', echo);
    const { url } = await system.gateway({ routes: [{ match: { pathPrefix: '/forum/' }, service: 'forum' }] });
    const answer = await fetch(`${url}/forum/`, { headers: html });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toMatchObject({ service: 'forum', url: '/forum/' });
  });
});
