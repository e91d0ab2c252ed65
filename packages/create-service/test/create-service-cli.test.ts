import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bin, outputFolder, run } from './scaffold-process.js';

describe('create-service, the command', () => {
  let folder: ReturnType<typeof outputFolder>;
  beforeEach(() => {
    folder = outputFolder();
  });
  afterEach(() => folder.remove());

  const lines = (text: string): string[] => text.split('\n').filter((line) => line !== '');

  it.each([
    ['Users', /^create-service: <name> "Users" is not a valid npm package name: .*capital letters/],
    ['my service', /^create-service: <name> "my service" is not a service name: letters, digits/],
    ['.hidden', /^create-service: <name> "\.hidden" is not a service name/],
    ['http', /^create-service: <name> "http" is not a valid npm package name: http is a core module name/],
    ['node_modules', /^create-service: <name> "node_modules" is not a valid npm package name/],
  ])('refuses the name %j with exit code 2 and one line naming <name>, writing nothing', async (name, line) => {
    const result = await run([bin, name], folder.dir);
    expect(result.code).toBe(2);
    expect(lines(result.stderr)).toEqual([expect.stringMatching(line)]);
    expect(result.stdout).toBe('');
    expect(readdirSync(folder.dir)).toEqual([]);
  });

  it('refuses a folder that is not empty, or is a file, with exit code 2 and one line naming --dir', async () => {
    mkdirSync(path.join(folder.dir, 'billing'));
    writeFileSync(path.join(folder.dir, 'billing', 'notes.txt'), 'mine');
    writeFileSync(path.join(folder.dir, 'plain-file'), '');

    const taken = await run([bin, 'billing'], folder.dir);
    expect(taken.code).toBe(2);
    expect(lines(taken.stderr)).toEqual([
      expect.stringMatching(/^create-service: --dir ".*billing" exists and is not empty; give a new or empty folder$/),
    ]);

    const file = await run([bin, 'billing', '--dir', 'plain-file'], folder.dir);
    expect(file.code).toBe(2);
    expect(lines(file.stderr)).toEqual([expect.stringMatching(/^create-service: --dir ".*plain-file" is a file/)]);

    expect(readdirSync(folder.dir).sort()).toEqual(['billing', 'plain-file']);
    expect(readdirSync(path.join(folder.dir, 'billing'))).toEqual(['notes.txt']);
  });

  it('answers a missing name, or a bad command line, with one line and exit code 2', async () => {
    const missing = await run([bin], folder.dir);
    expect(missing.code).toBe(2);
    expect(lines(missing.stderr)).toEqual([
      expect.stringMatching(/^create-service: missing the name; usage: create-service <name> \[--dir <path>\]/),
    ]);

    const unknown = await run([bin, 'billing', '--force'], folder.dir);
    expect(unknown.code).toBe(2);
    expect(lines(unknown.stderr)).toEqual([expect.stringMatching(/^create-service: unknown option '--force'/)]);

    const noPath = await run([bin, 'billing', '--dir'], folder.dir);
    expect(noPath.code).toBe(2);
    expect(lines(noPath.stderr)).toEqual([expect.stringMatching(/--dir <path>' argument missing/)]);
    expect(readdirSync(folder.dir)).toEqual([]);
  });

  it('writes into ./<name>, or an empty --dir, and prints the files and the next steps', async () => {
    const result = await run([bin, 'billing'], folder.dir);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    const written = [
      '.gitignore',
      'README.md',
      'package.json',
      'src/app-options.ts',
      'src/greetings-client.ts',
      'src/greetings-controller.ts',
      'src/main.ts',
      'test/greetings.test.ts',
      'tsconfig.json',
    ];
    for (const file of written) expect(result.stdout).toContain(`  ${file}\n`);
    expect(result.stdout).toContain('cd billing && npm install && npm test');
    expect(result.stdout).toContain('cd billing && npm install <tarball folder>/*.tgz && npm test');
    expect(readdirSync(path.join(folder.dir, 'billing'), { recursive: true }).length).toBeGreaterThanOrEqual(
      written.length,
    );

    mkdirSync(path.join(folder.dir, 'services', 'empty'), { recursive: true });
    const into = await run([bin, 'ledger', '--dir', 'services/empty'], folder.dir);
    expect(into.code).toBe(0);
    expect(into.stdout).toContain('cd services/empty && npm install && npm test');
    expect(readdirSync(path.join(folder.dir, 'services', 'empty')).sort()).toEqual([
      '.gitignore',
      'README.md',
      'package.json',
      'src',
      'test',
      'tsconfig.json',
    ]);
  });
});
