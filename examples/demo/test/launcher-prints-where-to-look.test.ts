import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

// `npm run demo` prints the URLs to open; each must answer, the registry's dashboard among them.
const launcher = fileURLToPath(new URL('../dist/main.js', import.meta.url));

describe('the demo launcher', () => {
  it('prints URLs that all answer 200, the gateway first and the registry dashboard at /ui/ among them', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'trellis-launcher-'));
    const child = spawn(process.execPath, [launcher], {
      env: {
        ...process.env,
        REGISTRY_PORT: '0',
        GATEWAY_PORT: '0',
        TRELLIS_DATA_DIR: dataDir,
        TRELLIS_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<number | string>((resolve) =>
      child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
    );
    try {
      const urls: string[] = [];
      await new Promise<void>((resolve, reject) => {
        createInterface({ input: child.stdout }).on('line', (line) => {
          const url = /^\s+\S+\s+(http:\/\/\S+)$/.exec(line)?.[1];
          if (url !== undefined) urls.push(url);
          if (line.startsWith('Press Ctrl-C')) resolve();
        });
        void exited.then((code) => reject(new Error(`the demo exited (${code}) before it was up`)));
      });

      // The one URL a newcomer needs: the gateway's home page, printed first.
      const home = await fetch(urls[0]!);
      expect(home.status).toBe(200);
      expect(await home.text()).toMatch(/href="\/forum\/"[\s\S]*href="\/chat\/"[\s\S]*href="\/mail\/"/);
      const dashboard = urls.find((url) => new URL(url).pathname === '/ui/');
      expect(dashboard).toBeDefined();
      for (const url of urls) {
        const response = await fetch(url);
        await response.arrayBuffer();
        expect({ url, status: response.status }).toEqual({ url, status: 200 });
      }
      const page = await fetch(dashboard!);
      expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(await page.text()).toContain('<html');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    await rm(dataDir, { recursive: true, force: true });
  }, 40_000);
});
