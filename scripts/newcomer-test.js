// @ts-check
/* global process, console, fetch, setTimeout, clearTimeout, AbortSignal */
// The check that the docs and the packages agree, run by .ci/run: what a newcomer does, outside
// this repository. It packs every package (`npm run pack`, each built afresh by its prepack),
// checks what the tarballs hold, makes a project in a temporary folder with plain `npm init` and
// `npm install` of the tarballs, writes the files docs/getting-started.md gives (its tsconfig,
// the users service and the forum), compiles them, starts the registry with the installed
// `trellis-registry` bin and both services, and asks the forum for a post whose author comes
// from users. Then it runs the scaffold from its tarball (`npm init @trellis/service`), builds
// the service it writes and runs that service's test. Needs the npm registry for the packages'
// own dependencies. `node scripts/newcomer-test.js --keep` leaves the folder to look at.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const guide = path.join(root, 'docs', 'getting-started.md');
const tarballs = path.join(root, 'tarballs');
const keep = process.argv.includes('--keep');
const work = mkdtempSync(path.join(os.tmpdir(), 'trellis-newcomer-'));
/** @type {import('node:child_process').ChildProcess[]} */
const running = [];

/** @param {string} message */
function step(message) {
  console.log(`\nnewcomer: ${message}`);
}

/** @param {string} message @returns {never} */
function fail(message) {
  throw new Error(message);
}

/**
 * Runs a command to its end, printing its output only if it fails.
 * @param {string} cwd @param {string} command @param {string[]} args
 * @returns {string} what it printed, both streams (npm warns on standard error)
 */
function run(cwd, command, args) {
  const result = spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 300_000,
    env: { ...process.env, npm_config_fund: 'false', npm_config_audit: 'false', npm_config_update_notifier: 'false' },
  });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  if (result.status !== 0) {
    fail(
      `\`${command} ${args.join(' ')}\` in ${cwd} failed (${result.error?.message ?? result.status ?? result.signal}):\n${output}`,
    );
  }
  return output;
}

/** npm install, refusing any package that asks for a newer Node.js than this one. */
function npmInstall(/** @type {string} */ cwd, /** @type {string[]} */ args) {
  const output = run(cwd, 'npm', ['install', '--loglevel', 'warn', ...args]);
  const engine = output.split('\n').filter((line) => /EBADENGINE|Unsupported engine/.test(line));
  if (engine.length > 0) fail(`npm install ${args.join(' ')} needs another Node.js:\n${engine.join('\n')}`);
}

/**
 * The files the guide gives: each fenced block whose introducing line ends with `path`:.
 * @returns {Map<string, string>} path → content
 */
function filesOfGuide() {
  const lines = readFileSync(guide, 'utf8').split('\n');
  const files = new Map();
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]?.startsWith('```')) continue;
    let j = i - 1;
    while (j >= 0 && lines[j]?.trim() === '') j--;
    const named = /`([\w./-]+)`:$/.exec(lines[j]?.trim() ?? '');
    let end = i + 1;
    while (end < lines.length && !lines[end]?.startsWith('```')) end++;
    if (named?.[1] !== undefined) files.set(named[1], `${lines.slice(i + 1, end).join('\n')}\n`);
    i = end;
  }
  return files;
}

/**
 * What an installed package must hold: its build with types, README, LICENSE, and source maps
 * whose sources are in the package too; dependencies on other Trellis packages as ranges.
 * @param {string} dir the package in node_modules
 */
function checkInstalledPackage(dir) {
  /** @type {{ name: string, exports?: Record<string, { types?: string, default?: string }>, dependencies?: Record<string, string>, engines?: { node?: string } }} */
  const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const problems = [];
  for (const file of ['README.md', 'LICENSE']) if (!existsSync(path.join(dir, file))) problems.push(`no ${file}`);
  for (const [entry, target] of Object.entries(manifest.exports ?? {})) {
    for (const file of [target.types, target.default]) {
      if (file === undefined || !existsSync(path.join(dir, file)))
        problems.push(`exports["${entry}"]: ${file} is missing`);
    }
  }
  if (manifest.engines?.node === undefined) problems.push('no engines.node');
  for (const [name, range] of Object.entries(manifest.dependencies ?? {})) {
    if (name.startsWith('@trellis/') && !/^[\^~]/.test(range))
      problems.push(`dependency ${name} is "${range}", not a range`);
  }
  /** @param {string} folder @returns {string[]} */
  const maps = (folder) =>
    readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
      const full = path.join(folder, entry.name);
      if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : maps(full);
      return entry.name.endsWith('.map') ? [full] : [];
    });
  for (const map of maps(dir)) {
    /** @type {{ sources: string[], sourceRoot?: string }} */
    const content = JSON.parse(readFileSync(map, 'utf8'));
    for (const source of content.sources) {
      const file = path.resolve(path.dirname(map), content.sourceRoot ?? '', source);
      if (!existsSync(file))
        problems.push(`${path.relative(dir, map)} points at ${path.relative(dir, file)}, not shipped`);
    }
  }
  if (problems.length > 0) fail(`${manifest.name}:\n  ${problems.slice(0, 10).join('\n  ')}`);
}

/**
 * Starts a long-running command and resolves with the URL of its "listening on" line.
 * @param {string} cwd @param {string} command @param {string[]} args @param {Record<string, string>} env
 * @returns {Promise<string>}
 */
function start(cwd, command, args, env = {}) {
  // Its own process group, stopped as a whole, as a terminal's Ctrl-C stops `npx` and its child.
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  running.push(child);
  /** @type {string[]} */
  const seen = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${command} ${args.join(' ')}: not listening after 30 s:\n${seen.join('\n')}`)),
      30_000,
    );
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        if (seen.length < 50) seen.push(line);
        // A service logs JSON lines: the URL ends at a quote too.
        const url = /listening on (http:\/\/[^\s"]+)/.exec(line)?.[1];
        if (url !== undefined) {
          clearTimeout(timer);
          resolve(url);
        }
      });
    }
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${command} ${args.join(' ')} exited (${code ?? signal}):\n${seen.join('\n')}`));
    });
  });
}

/** Asks until the answer has an author, or 15 s pass: the forum learns of users within a heartbeat. */
async function authorOfPost(/** @type {string} */ url) {
  const deadline = Date.now() + 15_000;
  let last = '';
  while (Date.now() < deadline) {
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) }).catch((/** @type {Error} */ e) => e);
    if (response instanceof Error) last = response.message;
    else {
      const body = await response.text();
      if (response.ok) return /** @type {{ author?: { name?: string } }} */ (JSON.parse(body)).author;
      last = `${response.status} ${body}`;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return fail(`GET ${url} never answered with a post: last ${last}`);
}

async function stopAll() {
  await Promise.all(
    running.map(
      (child) =>
        new Promise((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve(undefined);
          const group = -(child.pid ?? 0);
          const timer = setTimeout(() => process.kill(group, 'SIGKILL'), 10_000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve(undefined);
          });
          process.kill(group, 'SIGTERM');
        }),
    ),
  );
  running.length = 0;
}

async function firstService() {
  step('npm run pack');
  run(root, 'npm', ['run', 'pack']);
  const all = readdirSync(tarballs)
    .filter((f) => f.endsWith('.tgz'))
    .map((f) => path.join(tarballs, f));
  if (all.length === 0) fail(`npm run pack left no tarballs in ${tarballs}`);

  const project = path.join(work, 'first-service');
  step(`a project in ${project}, as docs/getting-started.md makes it`);
  mkdirSync(project);
  run(project, 'npm', ['init', '-y']);
  run(project, 'npm', ['pkg', 'set', 'type=module', 'scripts.build=tsc']);
  npmInstall(project, [...all, 'zod']);
  npmInstall(project, ['-D', 'typescript@5.9', '@types/node@20']);
  for (const name of readdirSync(path.join(project, 'node_modules', '@trellis'))) {
    checkInstalledPackage(path.join(project, 'node_modules', '@trellis', name));
  }

  const files = filesOfGuide();
  for (const file of ['tsconfig.json', 'src/users.ts', 'src/forum.ts']) {
    const content = files.get(file) ?? fail(`docs/getting-started.md no longer gives ${file}`);
    mkdirSync(path.dirname(path.join(project, file)), { recursive: true });
    writeFileSync(path.join(project, file), content);
  }
  step("npm run build (tsc with the guide's tsconfig)");
  run(project, 'npm', ['run', 'build']);

  step('npx trellis-registry, users and forum');
  const registry = await start(project, 'npx', ['trellis-registry', '--port', '0']);
  const env = { TRELLIS_REGISTRY_URL: registry, PORT: '0' };
  await start(project, process.execPath, ['dist/users.js'], env);
  const forum = await start(project, process.execPath, ['dist/forum.js'], env);
  const author = await authorOfPost(`${forum}/posts/1`);
  if (author?.name !== 'Grace Hopper')
    fail(`the forum's post 1 has author ${JSON.stringify(author)}, not Grace Hopper`);
  console.log(`newcomer: GET ${forum}/posts/1 has its author from users: ${author.name}`);
  await stopAll();
  return all;
}

/** @param {string[]} all the tarballs */
function scaffold(all) {
  // The two tarballs the guide installs: the scaffold and @trellis/core, its one Trellis
  // dependency (a scaffold that grew heavier would fail here on a 404 for the new one).
  const scaffolder = ['create-service', 'core'].map(
    (name) => all.find((f) => path.basename(f).startsWith(`trellis-${name}-`)) ?? fail(`no @trellis/${name} tarball`),
  );
  const folder = path.join(work, 'scaffold');
  step(`npm init @trellis/service my-service, from its tarball, in ${folder}`);
  mkdirSync(folder);
  run(folder, 'npm', ['init', '-y']);
  npmInstall(folder, scaffolder);
  run(folder, 'npm', ['init', '@trellis/service', 'my-service']);
  const service = path.join(folder, 'my-service');
  npmInstall(service, all);
  step('the scaffolded service: npm run build, npm test');
  run(service, 'npm', ['run', 'build']);
  console.log(run(service, 'npm', ['test']).trim().split('\n').slice(-8).join('\n'));
}

try {
  const all = await firstService();
  if (existsSync(path.join(root, 'packages', 'create-service'))) scaffold(all);
  console.log('\nnewcomer: passed');
} catch (error) {
  console.error(`\nnewcomer: FAILED: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
} finally {
  await stopAll();
  if (keep) console.log(`newcomer: left ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
