import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from '@jest/globals';
import { exited } from './cli-process.js';

// The bin is linked before anything is built (a fresh clone's `npm ci`): run before a build,
// it must say what to run, and nothing else. A copy of it in a folder of its own stands for the
// package unbuilt, so that the real dist/ stays.
const bin = fileURLToPath(new URL('../bin/trellis-registry.js', import.meta.url));
const folders: string[] = [];
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

/** A package folder holding the bin, and dist/cli.js with `cli` as its text unless undefined. */
function packageWith(cli: string | undefined): string {
  const folder = mkdtempSync(path.join(tmpdir(), 'trellis-bin-'));
  folders.push(folder);
  mkdirSync(path.join(folder, 'bin'));
  copyFileSync(bin, path.join(folder, 'bin', 'trellis-registry.js'));
  // The repository's package.json says "type": "module"; the copy needs its own.
  writeFileSync(path.join(folder, 'package.json'), '{ "type": "module" }\n');
  if (cli !== undefined) {
    mkdirSync(path.join(folder, 'dist'));
    writeFileSync(path.join(folder, 'dist', 'cli.js'), cli);
  }
  return folder;
}

async function run(folder: string): Promise<{ pid: number; code: number | string; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [path.join(folder, 'bin', 'trellis-registry.js'), '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await exited(child);
  return { pid: child.pid!, code, stdout, stderr };
}

describe('the trellis-registry bin', () => {
  it('prints one line naming `npm run build` and exits 1 when dist/cli.js is missing', async () => {
    const folder = packageWith(undefined);
    const { code, stdout, stderr } = await run(folder);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toBe(
      `trellis-registry: ${path.join(folder, 'dist', 'cli.js')} does not exist (the package is not built); run \`npm run build\` at the repository root\n`,
    );
  });

  it('shows any other failure of the built CLI as it is, not as a missing build', async () => {
    const folder = packageWith("import './missing-module.js';\n");
    const { code, stderr } = await run(folder);
    expect(code).toBe(1);
    expect(stderr).toContain('Cannot find module');
    expect(stderr).toContain(path.join(folder, 'dist', 'missing-module.js'));
    expect(stderr).not.toContain('npm run build');
  });

  it('runs the built CLI in its own process (no child), with the arguments it was given', async () => {
    const { pid, code, stdout } = await run(
      packageWith("process.stdout.write(`pid ${process.pid} args ${process.argv.slice(2).join(' ')}\\n`);\n"),
    );
    expect(code).toBe(0);
    expect(stdout).toBe(`pid ${pid} args --port 0\n`);
  });
});
