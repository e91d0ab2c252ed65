import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createService, type CreatedService } from '@trellis/create-service';
import { outputFolder, run } from './scaffold-process.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const tsc = path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc');

/** The fields of a package.json the tests read. */
interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly engines: { readonly node: string };
  readonly scripts: Readonly<Record<string, string>>;
  readonly dependencies: Readonly<Record<string, string>>;
  readonly devDependencies: Readonly<Record<string, string>>;
}

const json = (file: string): Manifest => JSON.parse(readFileSync(file, 'utf8')) as Manifest;

/** The files of `pattern` ("dist/test/*.test.js": a folder, then a name with one `*`), as a shell expands it. */
function expand(cwd: string, pattern: string): string[] {
  if (!pattern.includes('*')) return [pattern];
  const dir = path.posix.dirname(pattern);
  const [before = '', after = ''] = path.posix.basename(pattern).split('*');
  return readdirSync(path.join(cwd, dir))
    .filter((name) => name.startsWith(before) && name.endsWith(after))
    .sort()
    .map((name) => `${dir}/${name}`);
}

describe('a generated service', () => {
  const folder = outputFolder();
  let created: CreatedService;
  beforeAll(async () => {
    created = await createService({ name: 'billing', cwd: folder.dir });
  });
  afterAll(() => folder.remove());

  it('asks for the Trellis packages at the version of the scaffold, and for zod, TypeScript and the Node types as the repo builds with', () => {
    const manifest = json(path.join(created.dir, 'package.json'));
    const own = json(path.join(repo, 'packages', 'create-service', 'package.json'));
    const app = json(path.join(repo, 'packages', 'app', 'package.json'));
    const root = json(path.join(repo, 'package.json'));
    expect(manifest).toMatchObject({
      name: 'billing',
      private: true,
      type: 'module',
      engines: { node: root.engines.node },
      dependencies: { '@trellis/app': `^${own.version}`, zod: app.dependencies['zod'] },
    });
    for (const name of ['@trellis/core', '@trellis/registry', '@trellis/registry-server']) {
      expect(manifest.devDependencies[name]).toBe(`^${own.version}`);
    }
    // The same minor as the repo's TypeScript; Node's types at the engines' floor.
    const [major, minor] = /(\d+)\.(\d+)/.exec(root.devDependencies['typescript'] ?? '')?.slice(1) ?? [];
    expect(manifest.devDependencies['typescript']).toMatch(new RegExp(`^~${major}\\.${minor}\\.`));
    const floor = /(\d+\.\d+)/.exec(root.engines.node)?.[1];
    expect(manifest.devDependencies['@types/node']).toBe(`^${floor}.0`);
    expect(Object.keys(manifest.scripts).sort()).toEqual(['build', 'registry', 'start', 'test']);
  });

  it('carries its name where the templates leave it, and no placeholder', () => {
    const read = (file: string): string => readFileSync(path.join(created.dir, file), 'utf8');
    for (const file of created.files) expect(read(file)).not.toMatch(/SERVICE_NAME/);
    expect(read('src/app-options.ts')).toContain("service: 'billing'");
    expect(read('src/greetings-client.ts')).toContain("@Client('billing')");
    expect(read('README.md')).toMatch(/^# billing\n/);
    const tsconfig = JSON.parse(read('tsconfig.json').replace(/^\s*\/\/.*$/gm, '')) as { compilerOptions: unknown };
    expect(tsconfig.compilerOptions).toMatchObject({
      experimentalDecorators: true,
      emitDecoratorMetadata: true,
      module: 'NodeNext',
      strict: true,
      isolatedModules: true,
    });
  });

  it('type-checks, and its own test passes: the service on an in-memory registry, called through its client', async () => {
    const test = json(path.join(created.dir, 'package.json')).scripts['test'] ?? '';
    const [build, tests] = test.split(' && ');
    expect(build).toBe('tsc');
    const [node, ...args] = (tests ?? '').split(' ');
    expect(node).toBe('node');

    const compiled = await run([tsc, '-p', created.dir], created.dir, 120_000);
    expect(compiled).toMatchObject({ code: 0, stdout: '' });

    const tested = await run(
      args.flatMap((arg) => expand(created.dir, arg)),
      created.dir,
      60_000,
    );
    // Exits by itself: the test closes what it started (a killed run has no code).
    expect(tested.code).toBe(0);
    // Node 20 reports in TAP to a pipe, Node 22 and later with the spec reporter.
    expect(tested.stdout).toMatch(/^(#|ℹ) pass 3$/m);
    expect(tested.stdout).toMatch(/^(#|ℹ) fail 0$/m);
  }, 200_000);
});
