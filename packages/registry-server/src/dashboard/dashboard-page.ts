import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

// The dashboard is one page, built from the files in page/: index.html, style.css, the browser
// script compiled from script.ts, and favicon.svg. `npm run build` puts them all in
// dist/dashboard/page/. This module sits two folders below the package root both as
// src/dashboard/ (tests run it from source) and as dist/dashboard/, so one relative URL finds
// the built files from either.
const pageDirectory = new URL('../../dist/dashboard/page/', import.meta.url);

// index.html names its style and script with these two tags; the server puts their text in
// their place, so that the page is one request and the CSP can allow exactly them by hash.
const styleTag = '<link rel="stylesheet" href="style.css" />';
const scriptTag = '<script type="module" src="script.js"></script>';

/** The node the page describes in its heading. */
export interface DashboardNode {
  readonly name: string;
  readonly datacenter: string;
}

/** The page and the Content-Security-Policy that lets only its own inline script and style run. */
export interface DashboardPage {
  readonly html: string;
  readonly contentSecurityPolicy: string;
}

/** The dashboard's built files, read once and ready to render for any node. */
export interface DashboardFiles {
  /** index.html without its comments, with `{{node}}` and `{{datacenter}}` still to fill in. */
  readonly template: string;
  readonly style: string;
  readonly script: string;
  /** favicon.svg, served at /ui/favicon.svg. */
  readonly favicon: Buffer;
}

let loaded: { readonly files: DashboardFiles } | { readonly problem: string } | undefined;

/**
 * The dashboard's files from dist/dashboard/page/, read on the first call and kept for the
 * life of the process: they change only with a new build.
 *
 * @returns the files, or why they could not be read (a package built without `npm run build`'s
 *   copy step, or run from source before any build): the server then answers 503 on /ui/.
 * @example
 * const files = loadDashboardFiles();
 * if ('files' in files) renderDashboardPage(files.files, { name: 'trellis', datacenter: 'dc1' });
 */
export function loadDashboardFiles(): { readonly files: DashboardFiles } | { readonly problem: string } {
  loaded ??= readDashboardFiles();
  return loaded;
}

function readDashboardFiles(): { readonly files: DashboardFiles } | { readonly problem: string } {
  const read = (name: string): Buffer => readFileSync(new URL(name, pageDirectory));
  try {
    const template = read('index.html')
      .toString('utf8')
      // Notes for whoever edits the file, not for the browser.
      .replace(/<!--[\s\S]*?-->\n?\s*/g, '');
    const style = read('style.css').toString('utf8');
    const script = read('script.js').toString('utf8');
    for (const [tag, text, end] of [
      [styleTag, style, '</style'],
      [scriptTag, script, '</script'],
    ] as const) {
      if (template.split(tag).length !== 2) return { problem: `index.html must hold ${tag} once` };
      if (text.toLowerCase().includes(end)) return { problem: `the text inlined for ${tag} holds ${end}` };
    }
    return { files: { template, style, script, favicon: read('favicon.svg') } };
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    return { problem: `the dashboard's files are missing from ${decodeURI(pageDirectory.pathname)}: ${detail}` };
  }
}

/**
 * The registry's dashboard: one HTML page with its script and style inline, which shows the
 * services and their instances (health, address, tags, meta, checks) and the key/value store,
 * and keeps them current with Consul blocking queries.
 *
 * @param files the page's files, from {@link loadDashboardFiles}.
 * @param node the node and datacenter named in the page's heading; HTML-escaped here.
 * @returns the page, and a Content-Security-Policy allowing only its own script and style (by
 *   hash), its own favicon, and requests to its own origin.
 * @example
 * const files = loadDashboardFiles();
 * if ('files' in files) {
 *   const page = renderDashboardPage(files.files, { name: 'trellis', datacenter: 'dc1' });
 *   console.log(page.contentSecurityPolicy);
 * }
 */
export function renderDashboardPage(files: DashboardFiles, node: DashboardNode): DashboardPage {
  const values = { node: escapeHtml(node.name), datacenter: escapeHtml(node.datacenter) };
  // Functions as replacements: a `$&` in the node name or the script is then just text.
  const html = files.template
    .replace(/\{\{(node|datacenter)\}\}/g, (_match, key: 'node' | 'datacenter') => values[key])
    .replace(styleTag, () => `<style>${files.style}</style>`)
    .replace(scriptTag, () => `<script type="module">${files.script}</script>`);
  const contentSecurityPolicy = [
    "default-src 'none'",
    `script-src '${sha256(files.script)}'`,
    `style-src '${sha256(files.style)}'`,
    "connect-src 'self'",
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html, contentSecurityPolicy };
}

function sha256(text: string): string {
  return `sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
