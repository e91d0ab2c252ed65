import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TrellisApp } from '@trellis/app';

const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/**
 * Serves the service's web page: `GET /` is `public/index.html`, with the instance's id where
 * it says `__SERVED_BY__` (so the page shows which instance served it), and `GET /<file>` the
 * other files of `public/`. Read once, at start; behind the gateway the page is at `/<service>/`.
 * @example
 * servePage(app, new URL('../public/', import.meta.url));
 */
export function servePage(app: TrellisApp, folder: URL): void {
  const dir = fileURLToPath(folder);
  const files = new Map(
    readdirSync(dir)
      .filter((name) => types[path.extname(name)] !== undefined)
      .map((name) => [name, readFileSync(path.join(dir, name), 'utf8')] as const),
  );
  const html = files.get('index.html') ?? '';
  app.http.get('/', async (_request, reply) =>
    reply
      .type(types['.html'] as string)
      .header('cache-control', 'no-store')
      .send(html.replaceAll('__SERVED_BY__', app.instance?.id ?? app.service)),
  );
  for (const [name, text] of files) {
    if (name === 'index.html') continue;
    app.http.get(`/${name}`, async (_request, reply) =>
      reply
        .type(types[path.extname(name)] as string)
        .header('cache-control', 'no-cache')
        .send(text),
    );
  }
}
