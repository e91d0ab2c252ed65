import { createHash } from 'node:crypto';

// The dashboard is one self-contained page: inline CSS and vanilla JS, no build step and no
// external URL, so that it works on a machine with no network and needs nothing but this server.
// The script reads only the public HTTP API (catalog/services, health/service, kv) and builds
// the DOM with textContent and setAttribute alone: service names, tags, meta and check outputs
// are whatever clients registered, and never reach innerHTML.

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

const style = `
:root { color-scheme: light; --passing: #1a7f37; --warning: #9a6700; --critical: #cf222e; --muted: #57606a;
  --line: #d0d7de; --bg-soft: #f6f8fa; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
body { margin: 0; color: #1f2328; background: #fff; line-height: 1.45; }
header { padding: 1rem 1.5rem; border-bottom: 1px solid var(--line); background: var(--bg-soft); }
header h1 { margin: 0 0 .25rem; font-size: 1.5rem; }
header p { margin: .2rem 0; }
main { padding: 0 1.5rem 2rem; max-width: 72rem; }
h2 { margin-top: 1.75rem; font-size: 1.25rem; border-bottom: 1px solid var(--line); padding-bottom: .25rem; }
h3 { margin: 1.25rem 0 .5rem; font-size: 1.1rem; }
.muted { color: var(--muted); }
.summary span[data-count] { font-weight: 600; }
[data-connection="retrying"] { color: var(--critical); font-weight: 600; }
ul.instances { list-style: none; padding: 0; margin: 0; display: grid; gap: .75rem; }
li.instance { border: 1px solid var(--line); border-left: .4rem solid var(--muted); border-radius: .4rem; padding: .6rem .8rem; }
li.instance[data-status="passing"] { border-left-color: var(--passing); }
li.instance[data-status="warning"] { border-left-color: var(--warning); }
li.instance[data-status="critical"] { border-left-color: var(--critical); }
.instance-head { display: flex; flex-wrap: wrap; gap: .75rem; align-items: baseline; }
.instance-id { font-weight: 600; }
code, .address, td.output, td.value { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: .9em; }
.status { display: inline-block; min-width: 4.5rem; text-align: center; padding: 0 .4rem; border-radius: 1rem;
  color: #fff; background: var(--muted); font-weight: 600; font-size: .85em; }
.status-passing { background: var(--passing); }
.status-warning { background: var(--warning); }
.status-critical { background: var(--critical); }
ul.tags { display: inline-flex; flex-wrap: wrap; gap: .3rem; list-style: none; padding: 0; margin: 0; }
ul.tags li { background: #ddf4ff; border-radius: .3rem; padding: 0 .35rem; font-size: .85em; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 0 .75rem; margin: .4rem 0; font-size: .9em; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
.label { color: var(--muted); font-size: .9em; margin-right: .3rem; }
table { border-collapse: collapse; width: 100%; margin-top: .4rem; font-size: .9em; }
th, td { text-align: left; vertical-align: top; padding: .25rem .5rem; border-bottom: 1px solid var(--line); }
th { background: var(--bg-soft); }
td.output, td.value { white-space: pre-wrap; overflow-wrap: anywhere; max-width: 40rem; }
tr[data-kv-folder] td { font-weight: 600; }
td.key { padding-left: calc(var(--depth, 0) * 1.25rem + .5rem); overflow-wrap: anywhere; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;

const script = `
'use strict';
(() => {
  // The browser opens at most 6 connections to one host, and each held blocking query keeps one
  // busy: the catalog and KV watches take 2, health watches share at most 3, leaving 1 free.
  // With more services than slots, health watches hold for a short wait and take turns.
  const healthSlots = 3;
  const longWait = '5m';
  // With ACLs on: /ui#token=<secret> sends it with every call (the fragment never leaves the browser).
  const uiToken = new URLSearchParams(location.hash.slice(1)).get('token');
  const shortWait = '10s';
  const minGapMs = 1000;
  const maxBackoffMs = 30000;
  const kvUnavailableRetryMs = 30000;
  const statusRank = { passing: 0, warning: 1, critical: 2 };

  const services = new Map();
  const failing = new Map();
  let kvCount = null;
  let headingSeq = 0;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    // append() of a string makes a text node: this is what escapes user input.
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }
  const $ = (selector) => document.querySelector(selector);

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }

  function semaphore(size) {
    let free = size;
    const queue = [];
    return {
      acquire(signal) {
        if (free > 0) {
          free -= 1;
          return Promise.resolve();
        }
        return new Promise((resolve, reject) => {
          const entry = { resolve };
          queue.push(entry);
          signal.addEventListener('abort', () => {
            const at = queue.indexOf(entry);
            if (at >= 0) {
              queue.splice(at, 1);
              reject(signal.reason);
            }
          }, { once: true });
        });
      },
      release() {
        const next = queue.shift();
        if (next) next.resolve();
        else free += 1;
      },
    };
  }
  const slots = semaphore(healthSlots);

  function httpError(answer) {
    return new Error('HTTP ' + answer.status + (answer.body ? ': ' + answer.body.slice(0, 200) : ''));
  }

  // One Consul blocking-query loop: ask with the last X-Consul-Index, hand each answer to
  // handle(), back off exponentially on errors, and never ask twice within minGapMs when
  // nothing changed (a server that does not block must not get a tight loop).
  function watch(path, handle, options) {
    const life = new AbortController();
    let request = null;
    (async () => {
      let index = 0;
      let failures = 0;
      while (!life.signal.aborted) {
        const started = Date.now();
        const sent = index;
        let answer;
        let acquired = false;
        try {
          if (options.slots) {
            await options.slots.acquire(life.signal);
            acquired = true;
          }
          request = new AbortController();
          const wait = options.wait ? options.wait() : longWait;
          const url = path + (path.includes('?') ? '&' : '?') + 'index=' + index + '&wait=' + wait;
          const response = await fetch(url, {
            signal: AbortSignal.any([life.signal, request.signal]),
            cache: 'no-store',
            headers: uiToken ? { Accept: 'application/json', 'X-Consul-Token': uiToken } : { Accept: 'application/json' },
          });
          const body = await response.text();
          answer = { status: response.status, body, index: response.headers.get('X-Consul-Index') };
        } catch (error) {
          if (life.signal.aborted) return;
          if (request && request.signal.aborted) continue;
          answer = { error };
        } finally {
          if (acquired) options.slots.release();
        }
        try {
          if (answer.error) throw answer.error;
          const retryAfterMs = handle(answer);
          failures = 0;
          setProblem(path, null);
          if (retryAfterMs) {
            index = 0;
            await sleep(retryAfterMs, life.signal);
            continue;
          }
          const next = Number(answer.index);
          // Consul's advice: start over when the index goes backwards (a restarted server).
          index = Number.isSafeInteger(next) && next > 0 && next >= sent ? next : 0;
          if (index === sent && Date.now() - started < minGapMs) await sleep(minGapMs, life.signal);
        } catch (error) {
          failures += 1;
          const delay = Math.min(maxBackoffMs, 1000 * 2 ** (failures - 1));
          setProblem(path, (error && error.message ? error.message : String(error)) + '; retrying in ' + Math.round(delay / 1000) + ' s');
          await sleep(delay, life.signal);
        }
      }
    })();
    return {
      stop: () => life.abort(),
      // Ends the request being held, so that the next one uses the current wait.
      restart: () => request && request.abort(),
    };
  }

  function setProblem(path, message) {
    if (message === null) failing.delete(path);
    else failing.set(path, message);
    const status = $('[data-connection]');
    if (failing.size === 0) {
      status.setAttribute('data-connection', 'live');
      status.textContent = 'Live: updates appear as they happen.';
    } else {
      const [firstPath, firstMessage] = failing.entries().next().value;
      status.setAttribute('data-connection', 'retrying');
      status.textContent = 'Connection problem with ' + firstPath + ': ' + firstMessage;
    }
  }

  function touched() {
    const now = new Date();
    const time = $('[data-last-updated]');
    time.setAttribute('datetime', now.toISOString());
    time.textContent = now.toLocaleTimeString();
  }

  function worstStatus(checks) {
    let worst = 'passing';
    for (const check of checks) {
      const rank = statusRank[check.Status] === undefined ? 3 : statusRank[check.Status];
      const worstRank = statusRank[worst] === undefined ? 3 : statusRank[worst];
      if (rank > worstRank) worst = String(check.Status);
    }
    return worst;
  }

  function statusBadge(status) {
    const known = Object.prototype.hasOwnProperty.call(statusRank, status);
    return el('span', { class: 'status status-' + (known ? status : 'unknown'), 'data-status-word': '' }, status);
  }

  function hostPort(address, port) {
    const host = address.includes(':') ? '[' + address + ']' : address;
    return port ? host + ':' + port : host;
  }

  // ---- services -------------------------------------------------------------------------

  function healthWait() {
    return services.size <= healthSlots ? longWait : shortWait;
  }

  function onServices(answer) {
    if (answer.status !== 200) throw httpError(answer);
    const listed = JSON.parse(answer.body);
    if (listed === null || typeof listed !== 'object') throw new Error('catalog/services: not a JSON object');
    // The server's own "consul" service (listed as on a Consul server) is not one of the user's.
    const names = Object.keys(listed)
      .filter((name) => name !== 'consul')
      .sort();
    const wasLong = services.size <= healthSlots;
    for (const [name, service] of services) {
      if (!names.includes(name)) {
        service.watcher.stop();
        service.section.remove();
        services.delete(name);
      }
    }
    for (const name of names) {
      if (services.has(name)) continue;
      const headingId = 'service-' + (headingSeq += 1);
      const service = {
        name,
        headingId,
        entries: null,
        section: el('section', { 'data-service': name, 'aria-labelledby': headingId }),
      };
      services.set(name, service);
      renderService(service);
      service.watcher = watch('/v1/health/service/' + encodeURIComponent(name), (a) => onHealth(service, a), {
        slots,
        wait: healthWait,
      });
    }
    // Keep the sections in name order.
    const list = $('[data-services]');
    for (const name of names) list.append(services.get(name).section);
    if (wasLong && services.size > healthSlots) for (const service of services.values()) service.watcher.restart();
    renderSummary();
    touched();
  }

  function onHealth(service, answer) {
    if (answer.status !== 200) throw httpError(answer);
    const entries = JSON.parse(answer.body);
    if (!Array.isArray(entries)) throw new Error('health/service: not a JSON list');
    if (services.get(service.name) !== service) return;
    service.entries = entries.slice().sort((a, b) => (a.Service.ID < b.Service.ID ? -1 : a.Service.ID > b.Service.ID ? 1 : 0));
    renderService(service);
    renderSummary();
    touched();
  }

  function renderService(service) {
    const entries = service.entries;
    const heading = el('h3', { id: service.headingId }, service.name);
    if (entries !== null) {
      heading.append(' ', el('span', { class: 'muted' }, '(' + entries.length + (entries.length === 1 ? ' instance)' : ' instances)')));
    }
    const children = [heading];
    if (entries === null) children.push(el('p', { class: 'muted' }, 'Loading instances…'));
    else if (entries.length === 0) children.push(el('p', { class: 'muted', 'data-empty': 'instances' }, 'No instances.'));
    else children.push(el('ul', { class: 'instances' }, ...entries.map(renderInstance)));
    service.section.replaceChildren(...children);
  }

  function renderInstance(entry) {
    const svc = entry.Service || {};
    const checks = Array.isArray(entry.Checks) ? entry.Checks : [];
    const status = worstStatus(checks);
    const address = svc.Address || (entry.Node && entry.Node.Address) || '';
    const item = el('li', { class: 'instance', 'data-instance': svc.ID, 'data-status': status },
      el('div', { class: 'instance-head' },
        statusBadge(status),
        el('span', { class: 'instance-id' }, String(svc.ID)),
        el('span', { class: 'address', 'data-address': '' }, hostPort(String(address), svc.Port))));
    const tags = Array.isArray(svc.Tags) ? svc.Tags : [];
    if (tags.length > 0) {
      item.append(el('div', {}, el('span', { class: 'label' }, 'Tags'),
        el('ul', { class: 'tags', 'aria-label': 'Tags' }, ...tags.map((tag) => el('li', { 'data-tag': tag }, String(tag))))));
    }
    const meta = Object.entries(svc.Meta || {});
    if (meta.length > 0) {
      const list = el('dl', { class: 'meta', 'aria-label': 'Meta' });
      for (const [key, value] of meta) list.append(el('dt', {}, key), el('dd', { 'data-meta': key }, String(value)));
      item.append(list);
    }
    const rows = checks.map((check) =>
      el('tr', { 'data-check': check.CheckID, 'data-status': check.Status },
        el('td', {}, String(check.Name || check.CheckID)),
        el('td', {}, statusBadge(String(check.Status))),
        el('td', { class: 'output', 'data-output': '' }, String(check.Output || ''))));
    item.append(el('table', { class: 'checks' },
      el('caption', { class: 'visually-hidden' }, 'Checks of ' + svc.ID),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Check'), el('th', { scope: 'col' }, 'Status'), el('th', { scope: 'col' }, 'Output'))),
      el('tbody', {}, ...rows)));
    return item;
  }

  function renderSummary() {
    const counts = { services: services.size, instances: 0, passing: 0, warning: 0, critical: 0 };
    for (const service of services.values()) {
      for (const entry of service.entries || []) {
        counts.instances += 1;
        const status = worstStatus(Array.isArray(entry.Checks) ? entry.Checks : []);
        if (status === 'passing' || status === 'warning') counts[status] += 1;
        else counts.critical += 1;
      }
    }
    for (const [name, value] of Object.entries(counts)) $('[data-count="' + name + '"]').textContent = String(value);
    $('[data-count="keys"]').textContent = kvCount === null ? '–' : String(kvCount);
    $('[data-empty="services"]').hidden = services.size > 0;
  }

  // ---- key/value store ------------------------------------------------------------------

  function onKv(answer) {
    const note = $('[data-kv-note]');
    if (answer.status === 404 && answer.body.trim() !== '') {
      // Not the empty store (404 with no body): this server has no KV endpoint.
      kvCount = null;
      note.textContent = 'This server has no key/value store.';
      $('[data-kv]').hidden = true;
      renderSummary();
      return kvUnavailableRetryMs;
    }
    let list;
    if (answer.status === 404) list = [];
    else if (answer.status === 200) list = JSON.parse(answer.body);
    else throw httpError(answer);
    if (!Array.isArray(list)) throw new Error('kv: not a JSON list');
    kvCount = list.length;
    note.textContent = list.length === 0 ? 'No keys yet.' : '';
    $('[data-kv]').hidden = list.length === 0;
    $('[data-kv] tbody').replaceChildren(...kvRows(list));
    renderSummary();
    touched();
    return 0;
  }

  function decodeValue(value) {
    if (value === null || value === undefined) return { text: '(no value)', kind: 'empty' };
    let bytes;
    try {
      bytes = Uint8Array.from(atob(value), (c) => c.charCodeAt(0));
    } catch {
      return { text: '(not base64)', kind: 'invalid' };
    }
    try {
      return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes), kind: 'text' };
    } catch {
      return { text: '(' + bytes.length + ' bytes of binary data)', kind: 'binary' };
    }
  }

  // Keys sorted, with a row for each folder ("a/b/") before the keys under it.
  function kvRows(list) {
    const entries = list.slice().sort((a, b) => (a.Key < b.Key ? -1 : a.Key > b.Key ? 1 : 0));
    const folders = new Set();
    const rows = [];
    const folderRow = (path, depth, label) => {
      const cell = el('td', { class: 'key', title: path }, label + '/');
      cell.style.setProperty('--depth', String(depth));
      return el('tr', { 'data-kv-folder': path }, cell, el('td', { colspan: 3 }));
    };
    for (const entry of entries) {
      const key = String(entry.Key);
      const parts = key.split('/');
      const isFolder = key.endsWith('/');
      const leafDepth = isFolder ? parts.length - 2 : parts.length - 1;
      for (let depth = 0; depth < leafDepth; depth++) {
        const path = parts.slice(0, depth + 1).join('/') + '/';
        if (folders.has(path)) continue;
        folders.add(path);
        rows.push(folderRow(path, depth, parts[depth]));
      }
      if (isFolder) {
        if (!folders.has(key)) rows.push(folderRow(key, leafDepth, parts[leafDepth]));
        folders.add(key);
        continue;
      }
      const value = decodeValue(entry.Value);
      const cell = el('td', { class: 'key', title: key }, parts[leafDepth] === '' ? '(empty name)' : parts[leafDepth]);
      cell.style.setProperty('--depth', String(leafDepth));
      rows.push(el('tr', { 'data-key': key },
        cell,
        el('td', { class: 'value', 'data-value': value.kind }, value.text),
        el('td', {}, String(entry.Flags ?? 0)),
        el('td', {}, String(entry.ModifyIndex ?? ''))));
    }
    return rows;
  }

  renderSummary();
  watch('/v1/catalog/services', onServices, {});
  watch('/v1/kv/?recurse', onKv, {});
})();
`;

/**
 * The registry's dashboard: one HTML page with its script and style inline, which shows the
 * services and their instances (health, address, tags, meta, checks) and the key/value store,
 * and keeps them current with Consul blocking queries.
 *
 * @param node the node and datacenter named in the page's heading; HTML-escaped here.
 * @returns the page, and a Content-Security-Policy allowing only its own script and style, and
 *   requests to its own origin.
 * @example
 * const page = renderDashboardPage({ name: 'trellis', datacenter: 'dc1' });
 * reply.header('Content-Security-Policy', page.contentSecurityPolicy).type('text/html').send(page.html);
 */
export function renderDashboardPage(node: DashboardNode): DashboardPage {
  const name = escapeHtml(node.name);
  const datacenter = escapeHtml(node.datacenter);
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Trellis registry: ${name} (${datacenter})</title>
<link rel="icon" href="data:,">
<style>${style}</style>
</head>
<body>
<header>
<h1>Trellis registry</h1>
<p>Node <strong data-node>${name}</strong> in datacenter <strong data-datacenter>${datacenter}</strong></p>
<p class="summary" data-summary>
<span data-count="services">0</span> services,
<span data-count="instances">0</span> instances
(<span data-count="passing">0</span> passing, <span data-count="warning">0</span> warning,
<span data-count="critical">0</span> critical),
<span data-count="keys">–</span> keys
</p>
<p>Last updated <time data-last-updated>never</time>.
<span role="status" aria-live="polite" data-connection="connecting">Connecting…</span></p>
</header>
<main>
<section aria-labelledby="services-heading">
<h2 id="services-heading">Services</h2>
<p class="muted" data-empty="services">No services registered yet.</p>
<div data-services></div>
</section>
<section aria-labelledby="kv-heading">
<h2 id="kv-heading">Key/value store</h2>
<p class="muted" data-kv-note>Loading…</p>
<table data-kv hidden>
<caption class="visually-hidden">Keys and values</caption>
<thead><tr><th scope="col">Key</th><th scope="col">Value</th><th scope="col">Flags</th><th scope="col">Modify index</th></tr></thead>
<tbody></tbody>
</table>
</section>
</main>
<script>${script}</script>
</body>
</html>
`;
  const contentSecurityPolicy = [
    "default-src 'none'",
    `script-src '${sha256(script)}'`,
    `style-src '${sha256(style)}'`,
    "connect-src 'self'",
    'img-src data:',
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
