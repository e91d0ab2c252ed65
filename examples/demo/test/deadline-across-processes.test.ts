import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { ManagedProcess } from '../src/managed-process.js';
import { startRegistry } from '../src/system.js';

// Three services as three processes, A → B → C, each told only the registry's address. A's
// route calls B with a deadline; B calls C from its route, inheriting what is left of it.
const chainService = fileURLToPath(new URL('../dist/chain-service.js', import.meta.url));

describe('a deadline across three processes', () => {
  const started: ManagedProcess[] = [];
  const lines: string[] = [];
  const seen = new EventEmitter();

  afterAll(async () => {
    for (const p of started.reverse()) await p.stop();
  });

  /** Resolves once a line containing `text` was printed (at once if it was already). */
  function printed(text: string): Promise<string> {
    const found = lines.find((l) => l.includes(text));
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => {
      const onLine = (line: string): void => {
        if (!line.includes(text)) return;
        seen.off('line', onLine);
        resolve(line);
      };
      seen.on('line', onLine);
    });
  }

  it("aborts C's handler when A's deadline passes, and every link stops working", async () => {
    const output = (line: string): void => {
      lines.push(line);
      seen.emit('line', line);
    };
    const registry = await startRegistry({ output });
    started.push(registry);
    const link = async (service: string, next?: string): Promise<ManagedProcess> => {
      const p = await ManagedProcess.start({
        name: service,
        script: chainService,
        env: {
          CHAIN_SERVICE: service,
          ...(next === undefined ? {} : { CHAIN_NEXT: next }),
          TRELLIS_REGISTRY_URL: registry.url,
          PORT: '0',
        },
        output,
      });
      started.push(p);
      return p;
    };
    await link('chain-c');
    await link('chain-b', 'chain-c');
    const a = await link('chain-a', 'chain-b');

    const t0 = performance.now();
    const response = await fetch(`${a.url}/work?timeoutMs=1500`);
    const elapsed = performance.now() - t0;
    expect(response.status).toBe(504);
    expect(await response.json()).toMatchObject({ error: 'TIMEOUT' });

    // B and C learnt the deadline from the header; C's handler saw its signal abort and stopped.
    expect(await printed('chain-b started with a deadline')).toBeDefined();
    expect(await printed('chain-c started with a deadline')).toBeDefined();
    const aborted = await printed('chain-c aborted');
    expect(aborted).toMatch(/chain-c aborted (TIMEOUT|Error: the caller closed the connection)/);
    await printed('chain-c stopped working');
    await printed('chain-b call failed');
    // Within the deadline, plus the time to tell (not C's own 10 s attempt timeout).
    expect(elapsed).toBeLessThan(5_000);
  }, 60_000);
});
