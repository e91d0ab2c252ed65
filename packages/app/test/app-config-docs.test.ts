import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readAppOptions } from '@trellis/app';
import { envVariables } from '../src/config/env-settings.js';

// docs/configuration.md is what users configure from: its example files must be valid, and its
// table must list every variable with the key it sets.
const page = readFileSync(fileURLToPath(new URL('../../../docs/configuration.md', import.meta.url)), 'utf8');

describe('docs/configuration.md', () => {
  let cwd: string;
  beforeEach(() => {
    cwd = mkdtempSync(path.join(tmpdir(), 'trellis-docs-'));
  });
  afterEach(() => rmSync(cwd, { recursive: true, force: true }));

  it.each(['json', 'yaml'])('shows a %s config file that the schema accepts', (format) => {
    const blocks = [...page.matchAll(new RegExp('```' + format + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1] ?? '');
    expect(blocks).toHaveLength(1);
    writeFileSync(path.join(cwd, `trellis.config.${format}`), blocks[0] ?? '');
    const options = readAppOptions({ service: 'users' }, { cwd, env: {} });
    expect(options.port).toBe(8080);
  });

  it('lists every environment variable beside the file key it sets', () => {
    const rows = new Map(
      [...page.matchAll(/^\| `([\w.]+)`\s*\| `([A-Z_]+)`/gm)].map((m) => [m[2] ?? '', m[1] ?? ''] as const),
    );
    expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(envVariables.map((v) => [v.variable, v.key])));
  });
});
