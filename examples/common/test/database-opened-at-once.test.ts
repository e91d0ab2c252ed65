import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

// Instances of one service start together on one fresh file (the demo starts two mail
// instances at once). Each open is its own process, as SQLite's locks are between processes.
const opener = fileURLToPath(new URL('./fixtures/open-database.js', import.meta.url));

function open(file: string, at: number): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [opener, file, String(at)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, output: output.trim() })));
}

describe('a service database opened by several instances at once', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'trellis-db-at-once-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('opens in every instance, in WAL mode with its schema, however their first writes collide', async () => {
    // Without the WAL switch's retry about one open in ten failed with SQLITE_BUSY here, so
    // 20 rounds of 4 fail it all but surely.
    for (let round = 0; round < 20; round++) {
      const file = path.join(dir, `mail-${round}.sqlite`);
      const at = Date.now() + 300;
      const opened = await Promise.all(Array.from({ length: 4 }, () => open(file, at)));
      expect(opened).toEqual(Array.from({ length: 4 }, () => ({ code: 0, output: '' })));
      const db = new Database(file, { readonly: true });
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all()).toEqual(['mail']);
      db.close();
    }
  }, 60_000);
});
