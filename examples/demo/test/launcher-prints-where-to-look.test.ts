import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

// `npm run demo` prints the URLs to open; each must answer, the registry's dashboard among them.
const launcher = fileURLToPath(new URL('../dist/main.js', import.meta.url));

describe('the demo launcher', () => {
  it('prints URLs that all answer 200, the registry dashboard at /ui/ among them', async () => {
    const child = spawn(process.execPath, [launcher], {
      env: { ...process.env, REGISTRY_PORT: '0', FORUM_PORT: '0', TRELLIS_LOG_LEVEL: 'warn' },
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
  }, 40_000);
});
