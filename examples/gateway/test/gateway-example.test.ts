import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RegistryServer } from '@trellis/registry-server';
import { TrellisApp } from '@trellis/app';

// The example's main module as the demo runs it (dist/main.js, built by npm test), with its
// routes.json, in front of stand-ins for the services, and a public folder of the test's own.
const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));

describe('the example gateway (routes.json)', () => {
  let registry: RegistryServer;
  let registryUrl: string;
  let dir: string;
  let gateway: ChildProcess | undefined;
  const apps: TrellisApp[] = [];

  beforeEach(async () => {
    registry = new RegistryServer({ logLevel: 'silent' });
    registryUrl = (await registry.listen({ port: 0, host: '127.0.0.1' })).url;
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gateway-example-'));
    await fs.mkdir(path.join(dir, 'public'));
    await fs.writeFile(path.join(dir, 'public', 'index.html'), '<!doctype html><title>home</title>');
    await fs.writeFile(path.join(dir, 'public', 'site.css'), 'body{}');
  });
  afterEach(async () => {
    if (gateway !== undefined && gateway.exitCode === null) {
      const exited = new Promise((resolve) => gateway?.once('exit', resolve));
      gateway.kill('SIGTERM');
      await exited;
    }
    await Promise.all(apps.splice(0).map((a) => a.close()));
    await registry.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function service(name: string): Promise<TrellisApp> {
    const app = new TrellisApp({ service: name, registryUrl, logLevel: 'silent', drainMs: 0 });
    apps.push(app);
    app.http.get('/', async (_request, reply) => reply.type('text/html').send(`<h1>${name} page</h1>`));
    app.http.get('/sessions/:token', async (request, reply) =>
      (request.params as { token: string }).token === 't-ann'
        ? { user: { id: 'u-1', name: 'ann' } }
        : reply.code(404).send({ error: 'NO_SESSION', message: 'none' }),
    );
    app.http.get('/*', async (request) => ({
      service: name,
      url: request.url,
      user: request.headers['x-user-id'] ?? null,
    }));
    await app.start();
    return app;
  }

  async function startGateway(): Promise<string> {
    const child = spawn(process.execPath, [main], {
      env: {
        ...process.env,
        PORT: '0',
        TRELLIS_REGISTRY_URL: registryUrl,
        TRELLIS_LOG_LEVEL: 'warn',
        TRELLIS_DRAIN_MS: '0',
        GATEWAY_BASE_DIR: dir,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    gateway = child;
    return new Promise((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(() => reject(new Error(`the gateway did not start within 15 s: ${seen}`)), 15_000);
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        seen += chunk;
        const found = /gateway listening on (http:\/\/\S+)/.exec(seen);
        if (found !== null) {
          clearTimeout(timer);
          resolve(found[1] as string);
        }
      });
      child.once('exit', (code) => reject(new Error(`the gateway exited with ${code}: ${seen}`)));
    });
  }

  it('serves the home page and assets, redirects to the slash forms, and routes pages and APIs with sessions', async () => {
    for (const name of ['users', 'forum', 'chat', 'mail']) await service(name);
    const url = await startGateway();

    expect(await (await fetch(`${url}/`)).text()).toBe('<!doctype html><title>home</title>');
    expect(await (await fetch(`${url}/assets/site.css`)).text()).toBe('body{}');
    for (const app of ['forum', 'chat', 'mail']) {
      const bare = await fetch(`${url}/${app}`, { redirect: 'manual' });
      expect([bare.status, bare.headers.get('location')]).toEqual([308, `/${app}/`]);
      const page = await fetch(`${url}/${app}/`);
      expect(await page.text()).toBe(`<h1>${app} page</h1>`);
      expect(page.headers.get('x-served-by')).toMatch(new RegExp(`^${app}-`));
    }

    const ann = { authorization: 'Bearer t-ann' };
    expect(await (await fetch(`${url}/api/users/me`, { headers: ann })).json()).toEqual({
      service: 'users',
      url: '/me',
      user: 'u-1',
    });
    expect(await (await fetch(`${url}/api/forum/threads`)).json()).toEqual({
      service: 'forum',
      url: '/threads',
      user: null,
    });
    expect((await fetch(`${url}/api/mail/inbox`)).status).toBe(401);
    expect(await (await fetch(`${url}/api/mail/inbox`, { headers: { cookie: 'session=t-ann' } })).json()).toEqual({
      service: 'mail',
      url: '/inbox',
      user: 'u-1',
    });
    expect(await (await fetch(`${url}/api/chat/rooms`, { headers: ann })).json()).toMatchObject({
      service: 'chat',
      url: '/rooms',
    });
  });
});
