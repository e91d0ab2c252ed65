// @ts-check
/* global process, console */
// Type-checks every ```ts block in docs/**/*.md, README.md and packages/*/README.md, and every JSDoc `@example` in
// packages/*/src against the packages' sources, so that a change of API or defaults cannot
// leave an example teaching the old way. The conventions are in docs/README.md ("Examples
// are compiled"). Run by `npm run lint`; `node scripts/check-examples.js --keep` leaves the
// generated modules in .examples-check/ to look at.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, '.examples-check');
const givensDir = path.join(root, 'scripts', 'examples', 'givens');
const skipMarker = '// @check-skip';
// Examples known to be stale in files whose owners fix them: `path:line reason`, one a line.
const knownStaleFile = path.join(root, 'scripts', 'examples', 'known-stale.txt');

/** @typedef {{ source: string, line: number, code: string, pkg?: string, prelude?: string }} Example */

/** @param {string} dir @param {(name: string) => boolean} keep @returns {string[]} */
function walk(dir, keep) {
  if (!existsSync(dir)) return [];
  /** @type {string[]} */
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(full, keep));
    else if (keep(entry.name)) out.push(full);
  }
  return out.sort();
}

/** The ```ts blocks of one Markdown file, with the `<!-- check-prelude -->` comment before each. */
function markdownExamples(/** @type {string} */ file) {
  const lines = readFileSync(file, 'utf8').split('\n');
  /** @type {Example[]} */
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s*```(ts|typescript)\s*$/.test(lines[i] ?? '')) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^\s*```\s*$/.test(lines[end] ?? '')) end++;
    const code = lines.slice(start, end).join('\n');
    // A hidden prelude: an HTML comment on the lines just before the fence.
    let prelude;
    const before = lines.slice(0, i).join('\n');
    const match = /<!--\s*check-prelude\s*([\s\S]*?)-->\s*$/.exec(before);
    if (match) prelude = match[1];
    out.push({ source: path.relative(root, file), line: start + 1, code, ...(prelude ? { prelude } : {}) });
    i = end;
  }
  return out;
}

/** The `@example` sections of every JSDoc comment in one source file. */
function jsdocExamples(/** @type {string} */ file, /** @type {string} */ pkg) {
  const text = readFileSync(file, 'utf8');
  /** @type {Example[]} */
  const out = [];
  for (const comment of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const firstLine = text.slice(0, comment.index).split('\n').length;
    const lines = comment[0].split('\n').map((l) => l.replace(/^\s*\/?\*\*?\/? ?/, '').replace(/\s*\*\/$/, ''));
    for (let i = 0; i < lines.length; i++) {
      const tag = /^@example\b\s*(.*)$/.exec(lines[i] ?? '');
      if (!tag) continue;
      const body = [];
      const inline = (tag[1] ?? '').replace(/<caption>.*?<\/caption>/, '').trim();
      let start = i + 1;
      if (inline !== '') {
        body.push(inline);
        start = i;
      }
      let j = i + 1;
      // JSDoc's tags are lower case (`@throws`); a line starting `@Controller(` is a decorator in the example.
      while (j < lines.length && !/^@[a-z]/.test(lines[j] ?? '')) body.push(lines[j++] ?? '');
      const code = body.filter((l) => !/^\s*```/.test(l)).join('\n');
      out.push({ source: path.relative(root, file), line: firstLine + start, code, pkg });
      i = j - 1;
    }
  }
  return out;
}

/** Names a module exports, read from its declarations and explicit export lists (no `export *`). */
function exportsOf(/** @type {string} */ file) {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
  /** @type {string[]} */
  const names = [];
  for (const statement of source.statements) {
    if (ts.isExportDeclaration(statement) && statement.exportClause && ts.isNamedExports(statement.exportClause)) {
      for (const element of statement.exportClause.elements) names.push(element.name.text);
    } else if (
      ts.canHaveModifiers(statement) &&
      ts.getModifiers(statement)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword) &&
      !ts.getModifiers(statement)?.some((m) => m.kind === ts.SyntaxKind.DefaultKeyword)
    ) {
      if (ts.isVariableStatement(statement)) {
        for (const d of statement.declarationList.declarations) if (ts.isIdentifier(d.name)) names.push(d.name.text);
      } else if ('name' in statement && statement.name && ts.isIdentifier(/** @type {ts.Node} */ (statement.name))) {
        names.push(/** @type {ts.Identifier} */ (statement.name).text);
      }
    }
  }
  return names;
}

/** The packages by folder name, each with its index's exports. */
function packageExports() {
  /** @type {Map<string, string[]>} */
  const exports = new Map();
  // The app last: its decorators (Retry, Timeout, Fallback, ...) are named after the policies'
  // classes, and an example that does not import one means the class.
  const packages = readdirSync(path.join(root, 'packages')).sort(
    (a, b) => Number(a === 'app') - Number(b === 'app') || a.localeCompare(b),
  );
  for (const pkg of packages) {
    const index = path.join(root, 'packages', pkg, 'src', 'index.ts');
    if (existsSync(index)) exports.set(pkg, exportsOf(index));
  }
  return exports;
}

/** Splits a snippet into its import declarations and the rest, and lists the names it imports. */
function splitImports(/** @type {string} */ code) {
  const source = ts.createSourceFile('x.ts', code, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  /** @type {Set<string>} */
  const imported = new Set();
  let bodyStart = 0;
  for (const statement of source.statements) {
    if (!ts.isImportDeclaration(statement)) break;
    bodyStart = statement.end;
    const clause = statement.importClause;
    if (clause?.name) imported.add(clause.name.text);
    if (clause?.namedBindings) {
      if (ts.isNamespaceImport(clause.namedBindings)) imported.add(clause.namedBindings.name.text);
      else for (const element of clause.namedBindings.elements) imported.add(element.name.text);
    }
  }
  // The body starts on the last import's line (the rest of it), or on the first line.
  const importLines = bodyStart === 0 ? 0 : code.slice(0, bodyStart).split('\n').length;
  return { imports: code.slice(0, bodyStart), body: code.slice(bodyStart), importLines, imported };
}

function main() {
  const keep = process.argv.includes('--keep');
  /** @type {Example[]} */
  const examples = [];
  const packageReadmes = readdirSync(path.join(root, 'packages')).map((pkg) =>
    path.join(root, 'packages', pkg, 'README.md'),
  );
  for (const file of [
    path.join(root, 'README.md'),
    ...walk(path.join(root, 'docs'), (n) => n.endsWith('.md')),
    ...packageReadmes.sort(),
  ]) {
    if (existsSync(file)) examples.push(...markdownExamples(file));
  }
  for (const pkg of readdirSync(path.join(root, 'packages')).sort()) {
    for (const file of walk(
      path.join(root, 'packages', pkg, 'src'),
      (n) => n.endsWith('.ts') && !n.endsWith('.d.ts'),
    )) {
      examples.push(...jsdocExamples(file, pkg));
    }
  }
  const exports = packageExports();

  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  /** @type {Map<string, { example: Example, bodyLine: number, importLines: number, preludeLines: number }>} */
  const generated = new Map();
  let skipped = 0;
  examples.forEach((example, n) => {
    if (example.code.trimStart().startsWith(skipMarker)) {
      skipped++;
      return;
    }
    const { imports, body, importLines, imported } = splitImports(example.code);
    // In scope without an import, first come first served: for a JSDoc example, the exports
    // of its own file, then of the other files of its package (internal helpers included);
    // then every package's public exports. A name the example imports itself wins.
    /** @type {[string, string[]][]} */
    const sources = [];
    if (example.pkg !== undefined) {
      const own = path.join(root, example.source);
      sources.push([own, exportsOf(own)]);
      for (const sibling of walk(path.join(root, 'packages', example.pkg, 'src'), (n) => n.endsWith('.ts'))) {
        if (sibling !== own && !sibling.endsWith('index.ts')) sources.push([sibling, exportsOf(sibling)]);
      }
    }
    for (const file of [`${example.pkg}.ts`, 'all.ts']) {
      const givens = path.join(givensDir, file);
      if (example.pkg !== undefined || file === 'all.ts')
        if (existsSync(givens)) sources.push([givens, exportsOf(givens)]);
    }
    for (const [pkg, names] of exports) sources.push([`@trellis/${pkg}`, names]);
    const taken = new Set(imported);
    const autoImports = [];
    for (const [from, all] of sources) {
      const names = all.filter((name) => !taken.has(name));
      for (const name of names) taken.add(name);
      const specifier = from.startsWith('@') ? from : path.relative(outDir, from).replace(/\.ts$/, '.js');
      if (names.length > 0) autoImports.push(`import { ${names.join(', ')} } from '${specifier}';`);
    }
    const prelude = example.prelude?.trim() ?? '';
    const head = [imports, ...autoImports, prelude, '// The example runs as the body of an async function.'];
    const headText = head.join('\n');
    const file = path.join(outDir, `example-${String(n).padStart(3, '0')}.ts`);
    writeFileSync(file, `${headText}\nexport async function example() {\n${body}\n}\n`);
    generated.set(path.normalize(file), {
      example,
      importLines,
      // Line (1-based) in the generated file where the body's first line sits.
      bodyLine: headText.split('\n').length + 2,
      preludeLines: prelude === '' ? 0 : prelude.split('\n').length,
    });
  });

  const config = {
    extends: '../tsconfig.base.json',
    compilerOptions: {
      noEmit: true,
      composite: false,
      declaration: false,
      declarationMap: false,
      // Auto-imports bring in types and values alike.
      verbatimModuleSyntax: false,
      isolatedModules: false,
      // An example may end early, like the handler it stands for.
      noImplicitReturns: false,
      types: ['node'],
      baseUrl: '..',
      // As tsconfig.check.json's: sources, not dist, which lint runs before the build makes.
      paths: {
        '@trellis/tracing/sdk': ['./packages/tracing/src/sdk/index.ts'],
        '@trellis/*': ['./packages/*/src/index.ts'],
      },
    },
    include: ['*.ts'],
  };
  writeFileSync(path.join(outDir, 'tsconfig.json'), `${JSON.stringify(config, null, 2)}\n`);
  const parsed = ts.getParsedCommandLineOfConfigFile(
    path.join(outDir, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (!parsed) throw new Error('could not read the generated tsconfig');
  const program = ts.createProgram({ rootNames: [...generated.keys()], options: parsed.options });
  const diagnostics = ts.getPreEmitDiagnostics(program);

  /** @type {Map<string, string>} */
  const knownStale = new Map();
  for (const line of existsSync(knownStaleFile) ? readFileSync(knownStaleFile, 'utf8').split('\n') : []) {
    const match = /^(\S+:\d+)\s+(.*)$/.exec(line.trim());
    if (match && !line.startsWith('#')) knownStale.set(/** @type {string} */ (match[1]), match[2] ?? '');
  }
  /** @type {Set<string>} */
  const staleSeen = new Set();
  let failures = 0;
  for (const d of diagnostics) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n  ');
    const entry = d.file ? generated.get(path.normalize(d.file.fileName)) : undefined;
    if (!d.file || d.start === undefined) {
      console.error(`error TS${d.code}: ${message}`);
      failures++;
      continue;
    }
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    if (!entry) {
      console.error(`${path.relative(root, d.file.fileName)}:${line + 1}: error TS${d.code}: ${message}`);
      failures++;
      continue;
    }
    const generatedLine = line + 1;
    const { example, bodyLine, importLines } = entry;
    const key = `${example.source}:${example.line}`;
    if (knownStale.has(key)) {
      staleSeen.add(key);
      continue;
    }
    let where;
    if (generatedLine >= bodyLine) {
      where = `${example.source}:${example.line + Math.max(importLines - 1, 0) + generatedLine - bodyLine}`;
    } else if (generatedLine <= importLines) where = `${example.source}:${example.line + generatedLine - 1}`;
    else where = `${example.source}:${example.line} (prelude or auto-import)`;
    console.error(`${where}: error TS${d.code}: ${message}`);
    failures++;
  }
  for (const [key, reason] of knownStale) {
    if (staleSeen.has(key)) {
      console.warn(`${key}: known stale, not checked (${reason})`);
    } else {
      console.error(`${key}: listed in scripts/examples/known-stale.txt but compiles (or is gone): remove the line`);
      failures++;
    }
  }
  if (!keep && failures === 0) rmSync(outDir, { recursive: true, force: true });
  const checked = generated.size;
  if (failures > 0) {
    console.error(`\n${failures} error(s) in the examples (${checked} checked, ${skipped} skipped).`);
    console.error('See docs/README.md, "Examples are compiled"; `--keep` leaves the modules in .examples-check/.');
    process.exitCode = 1;
  } else {
    console.log(`examples: ${checked} type-checked, ${skipped} skipped (${skipMarker})`);
  }
}

main();
