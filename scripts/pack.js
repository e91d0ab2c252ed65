// @ts-check
/* global process, console */
// `npm run pack [-- <folder>]`: a tarball of every publishable package (packages/* that are not
// private) into one folder, default tarballs/. Until the packages are on the npm registry, a
// project installs them all from there at once (`npm install <folder>/*.tgz`), so that their
// `^0.1.0` dependencies on each other resolve among the tarballs. Each package's `prepack`
// builds it first. Older Trellis tarballs in the folder are removed, so that `*.tgz` never
// mixes two versions.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// `npm run` changes into the repository; INIT_CWD is where it was typed.
const here = process.env['INIT_CWD'] ?? process.cwd();
const destination = process.argv[2] === undefined ? path.join(root, 'tarballs') : path.resolve(here, process.argv[2]);
const npm = process.env['npm_execpath'];

const workspaces = readdirSync(path.join(root, 'packages'), { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => path.join('packages', entry.name))
  .filter((dir) => {
    /** @type {{ private?: boolean }} */
    const manifest = JSON.parse(readFileSync(path.join(root, dir, 'package.json'), 'utf8'));
    return manifest.private !== true;
  });

mkdirSync(destination, { recursive: true });
for (const file of readdirSync(destination)) {
  if (/^trellis-.*\.tgz$/.test(file)) rmSync(path.join(destination, file));
}
const args = ['pack', '--json', '--pack-destination', destination, ...workspaces.flatMap((w) => ['-w', w])];
// Under `npm run`, the same npm that runs this script; else the one on PATH.
const output =
  npm === undefined
    ? execFileSync('npm', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    : execFileSync(process.execPath, [npm, ...args], {
        cwd: root,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      });
/** @type {{ filename: string, entryCount: number, size: number }[]} */
const packed = JSON.parse(output);
console.log(`\n${packed.length} tarballs in ${destination}:`);
for (const p of packed)
  console.log(
    `  ${p.filename.padEnd(40)} ${String(p.entryCount).padStart(4)} files  ${(p.size / 1024).toFixed(0).padStart(5)} kB`,
  );
console.log(`\nInstall them into a project, all at once: npm install ${path.relative(here, destination) || '.'}/*.tgz`);
