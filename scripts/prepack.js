// @ts-check
/* global process, console */
// Every package's `prepack`: npm runs it in the package's folder before `npm pack` (and before
// `npm publish`), so that a tarball made in a clean clone holds the built package, not only its
// package.json. It builds the package afresh (and the packages it references, as far as they are
// out of date), copies its assets, and puts the repository's LICENSE beside its README.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyAssets } from './copy-assets.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const packageDir = process.cwd();
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

if (!existsSync(path.join(packageDir, 'README.md'))) {
  console.error(`prepack: ${path.relative(root, packageDir)} has no README.md; a package ships one`);
  process.exit(1);
}
// Afresh: a dist/ left from renamed sources would ship stale files. (Each project keeps its
// .tsbuildinfo in dist/, so that `tsc -b` sees a deleted dist/ as out of date.)
rmSync(path.join(packageDir, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-b', packageDir], { stdio: 'inherit' });
/** @type {{ exports?: Record<string, Record<string, string>> }} */
const manifest = JSON.parse(readFileSync(path.join(packageDir, 'package.json'), 'utf8'));
const missing = Object.values(manifest.exports ?? {})
  .flatMap((conditions) => Object.values(conditions))
  .filter((file) => !existsSync(path.join(packageDir, file)));
if (missing.length > 0) {
  // Seen when a tsconfig keeps its .tsbuildinfo outside dist/: tsc -b then builds nothing.
  console.error(`prepack: the build left out ${missing.join(', ')} of ${path.relative(root, packageDir)}`);
  process.exit(1);
}
copyAssets(packageDir);
copyFileSync(path.join(root, 'LICENSE'), path.join(packageDir, 'LICENSE'));
