// @ts-check
// Part of `npm run build`: tsc emits only JavaScript, so this copies the other files a package
// serves at run time (the registry dashboard's HTML, CSS and icon) from src/ to the same place
// under dist/, where the built code reads them and `npm pack` takes them.
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

for (const workspace of ['packages', 'examples']) {
  for (const entry of readdirSync(path.join(root, workspace), { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const src = path.join(root, workspace, entry.name, 'src');
    const dist = path.join(root, workspace, entry.name, 'dist');
    for (const file of assetsUnder(src)) {
      const target = path.join(dist, path.relative(src, file));
      mkdirSync(path.dirname(target), { recursive: true });
      copyFileSync(file, target);
    }
  }
}
