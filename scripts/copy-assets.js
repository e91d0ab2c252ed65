// @ts-check
/* global process */
// Part of `npm run build` (and of each package's `prepack`): tsc emits only JavaScript, so this
// copies the other files a package serves at run time (the registry dashboard's HTML, CSS and
// icon) from src/ to the same place under dist/, where the built code reads them and `npm pack`
// takes them.
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const assetExtensions = new Set(['.html', '.css', '.svg']);

/** @param {string} dir @returns {string[]} */
function assetsUnder(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return assetsUnder(full);
    return assetExtensions.has(path.extname(entry.name)) ? [full] : [];
  });
}

/**
 * Copies one workspace's assets from its src/ to its dist/.
 * @param {string} workspaceDir
 * @returns {void}
 */
export function copyAssets(workspaceDir) {
  const src = path.join(workspaceDir, 'src');
  const dist = path.join(workspaceDir, 'dist');
  for (const file of assetsUnder(src)) {
    const target = path.join(dist, path.relative(src, file));
    mkdirSync(path.dirname(target), { recursive: true });
    copyFileSync(file, target);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const workspace of ['packages', 'examples']) {
    for (const entry of readdirSync(path.join(root, workspace), { withFileTypes: true })) {
      if (entry.isDirectory()) copyAssets(path.join(root, workspace, entry.name));
    }
  }
}
