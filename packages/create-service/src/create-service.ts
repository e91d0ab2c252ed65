import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import validatePackageName from 'validate-npm-package-name';
import { ConfigError, isServiceName } from '@trellis/core';

/** What {@link createService} writes, and where. */
export interface CreateServiceOptions {
  /** The service's name: what it registers under and callers ask for, and its package's name. */
  readonly name: string;
  /** The folder to write it into, which must not exist or be empty; default `./<name>`. */
  readonly dir?: string;
  /** What a relative `dir` (and the default) is relative to; default the working directory. */
  readonly cwd?: string;
}

/** The service {@link createService} wrote. */
export interface CreatedService {
  /** The folder, absolute. */
  readonly dir: string;
  /** The files written, relative to `dir` with "/" between folders, sorted. */
  readonly files: readonly string[];
}

/** The placeholder the templates carry where the service's name goes. */
const namePlaceholder = /\{\{SERVICE_NAME\}\}/g;

// Templates are real files beside dist/ (and src/), so that they are read, linted and
// type-checked as they are; npm leaves a package's .gitignore out, hence the plain name.
const templatesDir = fileURLToPath(new URL('../templates/', import.meta.url));
const renamed: Readonly<Record<string, string>> = { gitignore: '.gitignore' };

// What the generated project installs besides the Trellis packages: zod as @trellis/app has
// it, TypeScript as the packages are built with, Node's types at the engines' floor (so that
// the code stays portable to the oldest Node it claims). A test keeps them in step with the repo.
const generatedVersions = {
  zod: '^4.6.7',
  typescript: '~5.9.3',
  '@types/node': '^20.19.0',
} as const;

/**
 * Writes a ready Trellis service into a new folder: package.json (ESM, scripts build, start,
 * test and registry), the tsconfig decorators need, a decorated controller, the app's entry,
 * the service's own declarative client, a test that starts it against an in-memory registry and
 * calls it through that client, and a README. The Trellis packages are asked for at this
 * package's own version, so that scaffold and framework stay in step. Nothing is written when
 * an argument is refused.
 *
 * @throws ConfigError naming `name` when it is not a service name or not a valid npm package
 *   name, or `dir` when the folder exists and is not empty (or is a file).
 *
 * @example
 * const created = await createService({ name: 'billing', dir: 'services/billing' });
 * console.log(`${created.files.length} files in ${created.dir}`);
 */
export async function createService(options: CreateServiceOptions): Promise<CreatedService> {
  const { name } = options;
  checkName(name);
  const dir = path.resolve(options.cwd ?? process.cwd(), options.dir ?? name);
  await checkEmpty(dir);

  // Everything is read and filled in before the first write.
  const version = await ownVersion();
  const files = new Map<string, string>([['package.json', packageJson(name, version)]]);
  for (const file of await templateFiles(templatesDir)) {
    const text = await readFile(path.join(templatesDir, file), 'utf8');
    const base = path.posix.basename(file);
    const target = path.posix.join(path.posix.dirname(file), renamed[base] ?? base);
    files.set(target, text.replace(namePlaceholder, name));
  }

  for (const [file, text] of files) {
    const target = path.join(dir, ...file.split('/'));
    await mkdir(path.dirname(target), { recursive: true });
    // `wx`: a file that appeared since the check is never overwritten.
    await writeFile(target, text, { flag: 'wx' });
  }
  return { dir, files: [...files.keys()].sort() };
}

function checkName(name: string): void {
  if (!isServiceName(name)) {
    throw new ConfigError(
      'name',
      `${JSON.stringify(name)} is not a service name: letters, digits, "-", "_" or ".", starting with a letter or digit`,
    );
  }
  const result = validatePackageName(name);
  if (!result.validForNewPackages) {
    const reason = [...(result.errors ?? []), ...(result.warnings ?? [])][0] ?? 'refused by npm';
    throw new ConfigError('name', `${JSON.stringify(name)} is not a valid npm package name: ${reason}`);
  }
}

async function checkEmpty(dir: string): Promise<void> {
  const found = await stat(dir).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  });
  if (found === undefined) return;
  if (!found.isDirectory()) throw new ConfigError('dir', `${JSON.stringify(dir)} is a file, not a folder`);
  if ((await readdir(dir)).length > 0) {
    throw new ConfigError('dir', `${JSON.stringify(dir)} exists and is not empty; give a new or empty folder`);
  }
}

async function ownVersion(): Promise<string> {
  const manifest = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return manifest.version;
}

/** The files under `dir`, relative and "/"-separated. */
async function templateFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'))
    .sort();
}

function packageJson(name: string, version: string): string {
  const trellis = `^${version}`;
  const manifest = {
    name,
    version: '0.1.0',
    private: true,
    type: 'module',
    engines: { node: '>=20.19' },
    scripts: {
      build: 'tsc',
      start: 'node dist/src/main.js',
      // The shell expands the pattern, the same way for Node 20's test runner and Node 22's.
      test: 'tsc && node --test dist/test/*.test.js',
      registry: 'trellis-registry',
    },
    dependencies: {
      '@trellis/app': trellis,
      zod: generatedVersions.zod,
    },
    devDependencies: {
      '@trellis/core': trellis,
      '@trellis/registry': trellis,
      '@trellis/registry-server': trellis,
      '@types/node': generatedVersions['@types/node'],
      typescript: generatedVersions.typescript,
    },
  };
  return `${JSON.stringify(manifest, null, 2)}\n`;
}
