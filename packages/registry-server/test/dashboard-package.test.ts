import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));

// The dashboard's files are read from dist/ at start-up, so the published package must hold
// them. npm test builds first (pretest: npm run build), so dist/ is current here; the package's
// prepack (which rebuilds dist/ afresh) is skipped, so that no other test finds dist/ gone.
describe('the packed @trellis/registry-server', () => {
  it("holds the dashboard's page, style, browser script and icon, and not the script's empty .d.ts", async () => {
    const { stdout } = await promisify(execFile)(
      'npm',
      ['pack', '--dry-run', '--ignore-scripts', '--json', '--workspace', '@trellis/registry-server'],
      { cwd: repoRoot },
    );
    const [pack] = JSON.parse(stdout) as { files: { path: string }[] }[];
    const paths = (pack?.files ?? []).map((file) => file.path);
    expect(paths).toContain('dist/dashboard/dashboard.js');
    expect(paths.filter((path) => path.startsWith('dist/dashboard/page/')).sort()).toEqual([
      'dist/dashboard/page/favicon.svg',
      'dist/dashboard/page/index.html',
      'dist/dashboard/page/script.js',
      'dist/dashboard/page/style.css',
    ]);
  });
});
