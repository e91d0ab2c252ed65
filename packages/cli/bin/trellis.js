#!/usr/bin/env node
// @ts-check
// The `trellis` bin. It lives outside dist/ so that npm links it before anything is built; it
// runs the built CLI in this process and leaves with its exit code.
import { existsSync } from 'node:fs';
import process from 'node:process';
import { URL, fileURLToPath } from 'node:url';

const cli = new URL('../dist/index.js', import.meta.url);
// Only the missing build gets this line; any other failure of the import shows itself.
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write(
    `trellis: ${fileURLToPath(cli)} does not exist (the package is not built); run \`npm run build\` at the repository root\n`,
  );
  process.exit(1);
}

/** @type {{ run: (argv: string[], io: object) => Promise<number> }} */
const { run } = await import(cli.href);
process.exitCode = await run(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
