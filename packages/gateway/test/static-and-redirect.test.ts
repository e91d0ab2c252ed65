import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { gatewaySystem } from './gateway-fixtures.js';

describe('static files and redirects', () => {
  const system = gatewaySystem();
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gateway-static-'));
    await fs.mkdir(path.join(dir, 'public'));
    await fs.writeFile(path.join(dir, 'public', 'index.html'), '<!doctype html><h1>home</h1>');
    await fs.writeFile(path.join(dir, 'public', 'site.css'), 'body { color: red }');
    await fs.writeFile(path.join(dir, 'secret.txt'), 'not served');
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('serves a folder under a prefix and one file at a path, relative to baseDir, and nothing outside it', async () => {
    const { url } = await system.gateway({
      baseDir: dir,
      routes: [
        { match: { path: '/' }, static: { root: 'public', file: 'index.html' } },
        { match: { pathPrefix: '/assets/' }, stripPrefix: true, static: { root: 'public' } },
      ],
    });
    const home = await fetch(`${url}/?from=test`);
    expect(home.status).toBe(200);
    expect(home.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await home.text()).toBe('<!doctype html><h1>home</h1>');
    const css = await fetch(`${url}/assets/site.css`);
    expect(css.headers.get('content-type')).toMatch(/^text\/css/);
    expect(await css.text()).toBe('body { color: red }');
    const missing = await fetch(`${url}/assets/nope.js`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'NOT_FOUND', message: 'no file /nope.js' });
    // node:http sends the path as written (fetch and undici resolve the dots first).
    for (const sneaky of ['/assets/../secret.txt', '/assets/%2e%2e/secret.txt']) {
      const answer = await rawGet(url, sneaky);
      expect(answer.status).toBe(400);
      expect(answer.body).not.toContain('not served');
    }
  });

  it('redirects with 308, keeping the query string', async () => {
    const { url } = await system.gateway({ routes: [{ match: { path: '/forum' }, redirect: '/forum/' }] });
    const answer = await fetch(`${url}/forum?page=2`, { redirect: 'manual' });
    expect(answer.status).toBe(308);
    expect(answer.headers.get('location')).toBe('/forum/?page=2');
  });
});

function rawGet(base: string, target: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const sent = http.get({ hostname, port, path: target }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    sent.on('error', reject);
  });
}
