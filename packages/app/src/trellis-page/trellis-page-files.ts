import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

// The page is built from the files in page/: index.html, style.css and the browser script
// compiled from script.ts; `npm run build` puts them all in dist/trellis-page/page/. This
// module sits two folders below the package root both as src/trellis-page/ (tests run it from
// source) and as dist/trellis-page/, so one relative URL finds the built files from either.
// (The registry server's dashboard is served the same way; the two share no code, since the
// app does not depend on the registry server.)
const pageDirectory = new URL('../../dist/trellis-page/page/', import.meta.url);

// index.html names its style and script with these tags; they are replaced by their text, so
// that the page is one request and the CSP allows exactly them by hash.
const styleTag = '<link rel="stylesheet" href="style.css" />';
const scriptTag = '<script type="module" src="script.js"></script>';

/** The /trellis page for one app, and the Content-Security-Policy that lets only its own script and style run. */
export interface TrellisPage {
  readonly html: string;
  readonly contentSecurityPolicy: string;
}

interface PageFiles {
  /** index.html with style and script inlined, `{{service}}` still to fill in. */
  readonly template: string;
  readonly styleHash: string;
  readonly scriptHash: string;
}

let loaded: PageFiles | { readonly problem: string } | undefined;

/**
 * The /trellis page of the app named `service`, from the built files (read once per process:
 * they change only with a new build).
 *
 * @returns the page, or why its files could not be read (a package run from source before any
 *   build): the app then answers HTML requests with JSON.
 */
export function renderTrellisPage(service: string): TrellisPage | { readonly problem: string } {
  loaded ??= readTemplate();
  if ('problem' in loaded) return loaded;
  const html = loaded.template.replace(/\{\{service\}\}/g, () => escapeHtml(service));
  const contentSecurityPolicy = [
    "default-src 'none'",
    `script-src '${loaded.scriptHash}'`,
    `style-src '${loaded.styleHash}'`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html, contentSecurityPolicy };
}

function readTemplate(): PageFiles | { readonly problem: string } {
  const read = (name: string): string => readFileSync(new URL(name, pageDirectory), 'utf8');
  try {
    // Notes for whoever edits the file, not for the browser.
    const template = read('index.html').replace(/<!--[\s\S]*?-->\n?\s*/g, '');
    const style = read('style.css');
    const script = read('script.js');
    for (const [tag, text, end] of [
      [styleTag, style, '</style'],
      [scriptTag, script, '</script'],
    ] as const) {
      if (template.split(tag).length !== 2) return { problem: `index.html must hold ${tag} once` };
      if (text.toLowerCase().includes(end)) return { problem: `the text inlined for ${tag} holds ${end}` };
    }
    return {
      // Functions as replacements: a `$&` in the script is then just text.
      template: template
        .replace(styleTag, () => `<style>${style}</style>`)
        .replace(scriptTag, () => `<script type="module">${script}</script>`),
      styleHash: sha256(style),
      scriptHash: sha256(script),
    };
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    return { problem: `the /trellis page's files are missing from ${decodeURI(pageDirectory.pathname)}: ${detail}` };
  }
}

function sha256(text: string): string {
  return `sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}`;
}

/** Text safe inside HTML text and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
