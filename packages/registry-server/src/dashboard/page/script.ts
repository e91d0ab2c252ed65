// The dashboard's script, compiled by tsc for the browser (this folder's tsconfig.json) and
// inlined into index.html by the server. No framework and no external URL, so that it works on
// a machine with no network and needs nothing but this server. It reads only the public HTTP
// API (catalog/services, health/service, kv) and builds the DOM with textContent and
// setAttribute alone: service names, tags, meta and check outputs are whatever clients
// registered, and never reach innerHTML.

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
const statusRank = new Map([
  ['passing', 0],
  ['warning', 1],
  ['critical', 2],
]);

/** One answer of the server, or the error of a request that got none. */
interface HttpAnswer {
  readonly status: number;
  readonly body: string;
  readonly index: string | null;
}
type Answer = HttpAnswer | { readonly error: unknown };

// The fields the page reads from the API's JSON. Every value is whatever a client registered,
// so each is `unknown` and turned into text with asText() where it is shown.
interface CheckEntry {
  readonly CheckID?: unknown;
  readonly Name?: unknown;
  readonly Status?: unknown;
  readonly Output?: unknown;
}
interface HealthEntry {
  readonly Node?: { readonly Address?: unknown } | null;
  readonly Service?: {
    readonly ID?: unknown;
    readonly Address?: unknown;
    readonly Port?: unknown;
    readonly Tags?: unknown;
    readonly Meta?: unknown;
  } | null;
  readonly Checks?: unknown;
}
interface KvEntry {
  readonly Key?: unknown;
  readonly Value?: unknown;
  readonly Flags?: unknown;
  readonly ModifyIndex?: unknown;
}

interface Slots {
  acquire(signal: AbortSignal): Promise<void>;
  release(): void;
}
interface WatchOptions {
  readonly slots?: Slots;
  readonly wait?: () => string;
  /** Told why a request failed, so that what has never loaded can say so instead of "loading". */
  readonly failed?: (message: string) => void;
}
interface Watcher {
  stop(): void;
  /** Ends the request being held, so that the next one uses the current wait. */
  restart(): void;
}
interface Service {
  readonly name: string;
  readonly headingId: string;
  readonly section: HTMLElement;
  /** null until the first answer of its health watch. */
  entries: HealthEntry[] | null;
  /** Why its health has not loaded yet, when a request failed before the first answer. */
  error: string | null;
  watcher?: Watcher;
}

const services = new Map<string, Service>();
const failing = new Map<string, string>();
/** Until the catalog's first answer the page knows nothing yet, and says "loading" (or why not). */
let catalogLoaded = false;
let catalogError: string | null = null;
let kvCount: number | null = null;
let headingSeq = 0;

type Child = Node | string | null | undefined;

function el(tag: string, attrs: Record<string, unknown> = {}, ...children: Child[]): HTMLElement {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, asText(value));
  // append() of a string makes a text node: this is what escapes user input.
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/** The page's own element for `selector`; index.html has each one. */
function $(selector: string): HTMLElement {
  const found = document.querySelector<HTMLElement>(selector);
  if (found === null) throw new Error(`dashboard: no ${selector} in the page`);
  return found;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A value from the API as text: a string as it is, anything else as its JSON. */
function asText(value: unknown): string {
  if (typeof value === 'string') return value;
  return JSON.stringify(value) ?? String(value);
}

function messageOf(error: unknown): string {
  return error instanceof Error && error.message !== '' ? error.message : String(error);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function semaphore(size: number): Slots {
  let free = size;
  const queue: { resolve: () => void }[] = [];
  return {
    acquire(signal) {
      if (free > 0) {
        free -= 1;
        return Promise.resolve();
      }
      return new Promise((resolve, reject) => {
        const entry = { resolve };
        queue.push(entry);
        signal.addEventListener(
          'abort',
          () => {
            const at = queue.indexOf(entry);
            if (at >= 0) {
              queue.splice(at, 1);
              reject(signal.reason);
            }
          },
          { once: true },
        );
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

function httpError(answer: HttpAnswer): Error {
  return new Error('HTTP ' + answer.status + (answer.body ? ': ' + answer.body.slice(0, 200) : ''));
}

// One Consul blocking-query loop: ask with the last X-Consul-Index, hand each answer to
// handle(), back off exponentially on errors, and never ask twice within minGapMs when
// nothing changed (a server that does not block must not get a tight loop). handle() returns
// a delay in ms before asking again from index 0, or 0 to go on blocking.
function watch(path: string, handle: (answer: HttpAnswer) => number | void, options: WatchOptions = {}): Watcher {
  const life = new AbortController();
  let request: AbortController | null = null;
  const loop = async (): Promise<void> => {
    let index = 0;
    let failures = 0;
    while (!life.signal.aborted) {
      const started = Date.now();
      const sent = index;
      let answer: Answer;
      let acquired = false;
      try {
        if (options.slots) {
          await options.slots.acquire(life.signal);
          acquired = true;
        }
        request = new AbortController();
        const wait = options.wait ? options.wait() : longWait;
        const url = path + (path.includes('?') ? '&' : '?') + 'index=' + index + '&wait=' + wait;
        const headers: Record<string, string> = { Accept: 'application/json' };
        if (uiToken) headers['X-Consul-Token'] = uiToken;
        const response = await fetch(url, {
          signal: AbortSignal.any([life.signal, request.signal]),
          cache: 'no-store',
          headers,
        });
        const body = await response.text();
        answer = { status: response.status, body, index: response.headers.get('X-Consul-Index') };
      } catch (error) {
        if (life.signal.aborted) return;
        if (request?.signal.aborted) continue;
        answer = { error };
      } finally {
        if (acquired) options.slots?.release();
      }
      try {
        if (!('status' in answer)) throw answer.error;
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
        const message = messageOf(error);
        setProblem(path, message + '; retrying in ' + Math.round(delay / 1000) + ' s');
        options.failed?.(message);
        await sleep(delay, life.signal);
      }
    }
  };
  void loop();
  return {
    stop: () => life.abort(),
    restart: () => request?.abort(),
  };
}

function setProblem(path: string, message: string | null): void {
  if (message === null) failing.delete(path);
  else failing.set(path, message);
  const status = $('[data-connection]');
  const first = failing.entries().next();
  if (first.done) {
    status.setAttribute('data-connection', 'live');
    status.textContent = 'Live: updates appear as they happen.';
  } else {
    const [firstPath, firstMessage] = first.value;
    status.setAttribute('data-connection', 'retrying');
    status.textContent = 'Connection problem with ' + firstPath + ': ' + firstMessage;
  }
}

/** Shows `text` in a note of the page, as an error or as what it is (loading, empty). */
function setNote(note: HTMLElement, text: string, state: 'loading' | 'error' | 'done'): void {
  note.textContent = text;
  note.setAttribute('data-state', state);
}

function touched(): void {
  const now = new Date();
  const time = $('[data-last-updated]');
  time.setAttribute('datetime', now.toISOString());
  time.textContent = now.toLocaleTimeString();
}

function rankOf(status: string): number {
  return statusRank.get(status) ?? 3;
}

function checksOf(entry: HealthEntry): CheckEntry[] {
  return Array.isArray(entry.Checks) ? entry.Checks.filter(isRecord) : [];
}

function worstStatus(checks: readonly CheckEntry[]): string {
  let worst = 'passing';
  for (const check of checks) {
    const status = asText(check.Status);
    if (rankOf(status) > rankOf(worst)) worst = status;
  }
  return worst;
}

function statusBadge(status: string): HTMLElement {
  const known = statusRank.has(status);
  return el('span', { class: 'status status-' + (known ? status : 'unknown'), 'data-status-word': '' }, status);
}

function hostPort(address: string, port: unknown): string {
  const host = address.includes(':') ? '[' + address + ']' : address;
  return port ? host + ':' + asText(port) : host;
}

// ---- services -------------------------------------------------------------------------

function healthWait(): string {
  return services.size <= healthSlots ? longWait : shortWait;
}

function onServices(answer: HttpAnswer): void {
  if (answer.status !== 200) throw httpError(answer);
  const listed: unknown = JSON.parse(answer.body);
  if (!isRecord(listed)) throw new Error('catalog/services: not a JSON object');
  // The server's own "consul" service (listed as on a Consul server) is not one of the user's.
  const names = Object.keys(listed)
    .filter((name) => name !== 'consul')
    .sort();
  const wasLong = services.size <= healthSlots;
  for (const [name, service] of services) {
    if (!names.includes(name)) {
      service.watcher?.stop();
      service.section.remove();
      services.delete(name);
    }
  }
  const list = $('[data-services]');
  for (const name of names) {
    let service = services.get(name);
    if (service === undefined) {
      const headingId = 'service-' + (headingSeq += 1);
      const created: Service = {
        name,
        headingId,
        entries: null,
        error: null,
        section: el('section', { 'data-service': name, 'aria-labelledby': headingId }),
      };
      services.set(name, created);
      renderService(created);
      created.watcher = watch('/v1/health/service/' + encodeURIComponent(name), (a) => onHealth(created, a), {
        slots,
        wait: healthWait,
        failed: (message) => {
          if (created.entries !== null) return;
          created.error = message;
          renderService(created);
        },
      });
      service = created;
    }
    // Appending again keeps the sections in name order.
    list.append(service.section);
  }
  if (wasLong && services.size > healthSlots) for (const service of services.values()) service.watcher?.restart();
  catalogLoaded = true;
  $('[data-services-note]').hidden = true;
  renderSummary();
  touched();
}

function onCatalogFailed(message: string): void {
  if (catalogLoaded) return;
  catalogError = message;
  setNote($('[data-services-note]'), 'Could not load the services (' + message + ').', 'error');
  renderSummary();
}

function onHealth(service: Service, answer: HttpAnswer): void {
  if (answer.status !== 200) throw httpError(answer);
  const entries: unknown = JSON.parse(answer.body);
  if (!Array.isArray(entries)) throw new Error('health/service: not a JSON list');
  if (services.get(service.name) !== service) return;
  const id = (entry: HealthEntry): string => asText(entry.Service?.ID);
  // HealthEntry's fields are read with ?. and asText() only, so any object will do.
  service.entries = (entries.filter(isRecord) as HealthEntry[]).sort((a, b) =>
    id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0,
  );
  service.error = null;
  renderService(service);
  renderSummary();
  touched();
}

function renderService(service: Service): void {
  const entries = service.entries;
  const heading = el('h3', { id: service.headingId }, service.name);
  if (entries !== null) {
    heading.append(
      ' ',
      el('span', { class: 'muted' }, '(' + entries.length + (entries.length === 1 ? ' instance)' : ' instances)')),
    );
  }
  const children: HTMLElement[] = [heading];
  if (entries === null && service.error !== null) {
    children.push(
      el('p', { class: 'muted', 'data-state': 'error' }, 'Could not load its instances (' + service.error + ').'),
    );
  } else if (entries === null)
    children.push(el('p', { class: 'muted', 'data-state': 'loading' }, 'Loading instances…'));
  else if (entries.length === 0) children.push(el('p', { class: 'muted', 'data-empty': 'instances' }, 'No instances.'));
  else children.push(el('ul', { class: 'instances' }, ...entries.map(renderInstance)));
  service.section.replaceChildren(...children);
}

function renderInstance(entry: HealthEntry): HTMLElement {
  const svc = entry.Service ?? {};
  const checks = checksOf(entry);
  const status = worstStatus(checks);
  const address = svc.Address || entry.Node?.Address || '';
  const item = el(
    'li',
    { class: 'instance', 'data-instance': svc.ID, 'data-status': status },
    el(
      'div',
      { class: 'instance-head' },
      statusBadge(status),
      el('span', { class: 'instance-id' }, asText(svc.ID)),
      el('span', { class: 'address', 'data-address': '' }, hostPort(asText(address), svc.Port)),
    ),
  );
  const tags: unknown[] = Array.isArray(svc.Tags) ? svc.Tags : [];
  if (tags.length > 0) {
    item.append(
      el(
        'div',
        {},
        el('span', { class: 'label' }, 'Tags'),
        el(
          'ul',
          { class: 'tags', 'aria-label': 'Tags' },
          ...tags.map((tag) => el('li', { 'data-tag': tag }, asText(tag))),
        ),
      ),
    );
  }
  const meta = Object.entries(isRecord(svc.Meta) ? svc.Meta : {});
  if (meta.length > 0) {
    const list = el('dl', { class: 'meta', 'aria-label': 'Meta' });
    for (const [key, value] of meta) list.append(el('dt', {}, key), el('dd', { 'data-meta': key }, asText(value)));
    item.append(list);
  }
  const rows = checks.map((check) =>
    el(
      'tr',
      { 'data-check': check.CheckID, 'data-status': check.Status },
      el('td', {}, asText(check.Name || check.CheckID)),
      el('td', {}, statusBadge(asText(check.Status))),
      el('td', { class: 'output', 'data-output': '' }, asText(check.Output || '')),
    ),
  );
  item.append(
    el(
      'table',
      { class: 'checks' },
      el('caption', { class: 'visually-hidden' }, 'Checks of ' + asText(svc.ID)),
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          el('th', { scope: 'col' }, 'Check'),
          el('th', { scope: 'col' }, 'Status'),
          el('th', { scope: 'col' }, 'Output'),
        ),
      ),
      el('tbody', {}, ...rows),
    ),
  );
  return item;
}

// Before the catalog's first answer the summary says "Loading…" (or why it failed), and an
// instance count stays "…" while a service's health has not answered: never a "0" that is not
// known to be true.
function renderSummary(): void {
  const summary = $('[data-summary]');
  if (!catalogLoaded) {
    summary.setAttribute('data-state', catalogError === null ? 'loading' : 'error');
    $('[data-summary-note]').textContent = catalogError === null ? 'Loading…' : 'Could not load the services.';
    return;
  }
  summary.setAttribute('data-state', 'done');
  $('[data-summary-note]').hidden = true;
  $('[data-counts]').hidden = false;
  const counts = { services: services.size, instances: 0, passing: 0, warning: 0, critical: 0 };
  let pending = false;
  for (const service of services.values()) {
    if (service.entries === null) pending = true;
    for (const entry of service.entries ?? []) {
      counts.instances += 1;
      const status = worstStatus(checksOf(entry));
      if (status === 'passing' || status === 'warning') counts[status] += 1;
      else counts.critical += 1;
    }
  }
  for (const [name, value] of Object.entries(counts)) {
    $('[data-count="' + name + '"]').textContent = pending && name !== 'services' ? '…' : String(value);
  }
  $('[data-count="keys"]').textContent = kvCount === null ? '–' : String(kvCount);
  $('[data-empty="services"]').hidden = services.size > 0;
}

// ---- key/value store ------------------------------------------------------------------

function onKv(answer: HttpAnswer): number {
  const note = $('[data-kv-note]');
  if (answer.status === 404 && answer.body.trim() !== '') {
    // Not the empty store (404 with no body): this server has no KV endpoint.
    kvCount = null;
    setNote(note, 'This server has no key/value store.', 'done');
    $('[data-kv]').hidden = true;
    renderSummary();
    return kvUnavailableRetryMs;
  }
  let list: unknown;
  if (answer.status === 404) list = [];
  else if (answer.status === 200) list = JSON.parse(answer.body);
  else throw httpError(answer);
  if (!Array.isArray(list)) throw new Error('kv: not a JSON list');
  const entries = list.filter(isRecord);
  kvCount = entries.length;
  setNote(note, entries.length === 0 ? 'No keys yet.' : '', 'done');
  $('[data-kv]').hidden = entries.length === 0;
  $('[data-kv] tbody').replaceChildren(...kvRows(entries));
  renderSummary();
  touched();
  return 0;
}

function onKvFailed(message: string): void {
  if (kvCount !== null) return;
  setNote($('[data-kv-note]'), 'Could not load the key/value store (' + message + ').', 'error');
}

function decodeValue(value: unknown): { text: string; kind: 'empty' | 'invalid' | 'text' | 'binary' } {
  if (value === null || value === undefined) return { text: '(no value)', kind: 'empty' };
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.from(atob(asText(value)), (c) => c.charCodeAt(0));
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
function kvRows(list: readonly KvEntry[]): HTMLElement[] {
  const key = (entry: KvEntry): string => asText(entry.Key);
  const entries = list.slice().sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  const folders = new Set<string>();
  const rows: HTMLElement[] = [];
  const folderRow = (path: string, depth: number, label: string): HTMLElement => {
    const cell = el('td', { class: 'key', title: path }, label + '/');
    cell.style.setProperty('--depth', String(depth));
    return el('tr', { 'data-kv-folder': path }, cell, el('td', { colspan: 3 }));
  };
  for (const entry of entries) {
    const fullKey = key(entry);
    const parts = fullKey.split('/');
    const isFolder = fullKey.endsWith('/');
    const leafDepth = isFolder ? parts.length - 2 : parts.length - 1;
    for (let depth = 0; depth < leafDepth; depth++) {
      const path = parts.slice(0, depth + 1).join('/') + '/';
      if (folders.has(path)) continue;
      folders.add(path);
      rows.push(folderRow(path, depth, parts[depth] ?? ''));
    }
    const leaf = parts[leafDepth] ?? '';
    if (isFolder) {
      if (!folders.has(fullKey)) rows.push(folderRow(fullKey, leafDepth, leaf));
      folders.add(fullKey);
      continue;
    }
    const value = decodeValue(entry.Value);
    const cell = el('td', { class: 'key', title: fullKey }, leaf === '' ? '(empty name)' : leaf);
    cell.style.setProperty('--depth', String(leafDepth));
    rows.push(
      el(
        'tr',
        { 'data-key': fullKey },
        cell,
        el('td', { class: 'value', 'data-value': value.kind }, value.text),
        el('td', {}, asText(entry.Flags ?? 0)),
        el('td', {}, asText(entry.ModifyIndex ?? '')),
      ),
    );
  }
  return rows;
}

renderSummary();
watch('/v1/catalog/services', onServices, { failed: onCatalogFailed });
watch('/v1/kv/?recurse', onKv, { failed: onKvFailed });
