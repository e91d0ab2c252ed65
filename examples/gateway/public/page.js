// @ts-check
// What the four pages (home, forum, chat, mail) share, served by the gateway at /assets/page.js:
// calls to the services' APIs through the gateway, errors shown on the page, the session cookie,
// the navigation bar and the "served by" footer. Data is only ever put in the page as text
// (textContent, createElement), never as HTML, so a post holding <script> shows as typed.

/** A failed call: the service's (or the gateway's) error, or no answer at all. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status; 0 when nothing answered
   * @param {string} code the answer's `error`, e.g. "INVALID_REQUEST"
   * @param {string} message what to show
   * @param {string | undefined} field the input at fault, e.g. "body.name"
   */
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/**
 * Calls a service through the gateway: `api('forum', '/threads/1')` is `GET /api/forum/threads/1`.
 * Resolves to the decoded JSON (undefined for 204); notes which instance answered in the footer.
 * @param {'users' | 'forum' | 'chat' | 'mail'} service
 * @param {string} path
 * @param {{ method?: string, body?: unknown }} [options]
 * @returns {Promise<any>}
 * @throws {ApiError} for any answer outside 2xx, with a message fit to show
 */
export async function api(service, path, options = {}) {
  /** @type {Response} */
  let response;
  try {
    response = await fetch(`/api/${service}${path}`, {
      method: options.method ?? 'GET',
      headers: options.body === undefined ? {} : { 'content-type': 'application/json' },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: 'same-origin',
    });
  } catch {
    throw new ApiError(0, 'UNREACHABLE', 'The server cannot be reached. Is the demo still running?', undefined);
  }
  const servedBy = response.headers.get('x-served-by');
  if (servedBy) noteServedBy(`${service} answered by`, servedBy);
  const text = await response.text();
  /** @type {any} */
  let body;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (response.ok) return body;
  throw errorOf(service, response.status, body);
}

/**
 * @param {string} service
 * @param {number} status
 * @param {any} body
 * @returns {ApiError}
 */
function errorOf(service, status, body) {
  const code = typeof body?.error === 'string' ? body.error : `HTTP_${status}`;
  const message = typeof body?.message === 'string' ? body.message : '';
  const field = typeof body?.field === 'string' ? body.field : undefined;
  if (status === 503 || status === 502 || status === 504) {
    // The gateway found no instance, or a service further down failed: say which, not a stack.
    const down = typeof body?.service === 'string' ? body.service : service;
    return new ApiError(
      status,
      code,
      `The ${down} service is unavailable right now (${code}); try again in a moment.${message ? ` ${message}` : ''}`,
      field,
    );
  }
  if (status === 401) return new ApiError(status, code, message || 'Sign in first.', field);
  if (status === 429)
    return new ApiError(status, code, `Too many requests; ${message || 'slow down a little.'}`, field);
  return new ApiError(status, code, message || `The ${service} service answered ${status}.`, field);
}

// ---- messages on the page -------------------------------------------------------------------

/**
 * Shows an error's message in the page's error box (`data-testid="error"`), and marks the input
 * it names (`body.title` → the form's input named "title").
 * @param {unknown} error
 * @param {HTMLFormElement} [form]
 */
export function showError(error, form) {
  const box = byTestId('error');
  box.textContent = error instanceof Error ? error.message : String(error);
  box.hidden = false;
  if (form && error instanceof ApiError && error.field?.startsWith('body.')) {
    const input = form.elements.namedItem(error.field.slice('body.'.length));
    if (input instanceof HTMLElement) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  }
}

/** Hides the error box and clears the marks of a form. @param {HTMLFormElement} [form] */
export function clearError(form) {
  const box = byTestId('error');
  box.textContent = '';
  box.hidden = true;
  form?.querySelectorAll('[aria-invalid]').forEach((input) => input.removeAttribute('aria-invalid'));
}

/** Shows a short notice (`data-testid="notice"`), e.g. "Posted.". @param {string} text */
export function showNotice(text) {
  const box = byTestId('notice');
  box.textContent = text;
  box.hidden = text === '';
}

/**
 * Runs a form's action on submit: errors go to the error box, the button is disabled meanwhile.
 * @param {HTMLFormElement} form
 * @param {(data: Record<string, string>) => Promise<void>} action
 */
export function onSubmit(form, action) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearError(form);
    const data = Object.fromEntries([...new FormData(form)].map(([k, v]) => [k, String(v)]));
    const buttons = [...form.querySelectorAll('button')];
    buttons.forEach((b) => (b.disabled = true));
    action(data)
      .catch((error) => showError(error, form))
      .finally(() => buttons.forEach((b) => (b.disabled = false)));
  });
}

// ---- the session ----------------------------------------------------------------------------

/** The session token of the `session` cookie, if any. @returns {string | undefined} */
export function sessionToken() {
  const entry = document.cookie.split('; ').find((c) => c.startsWith('session='));
  return entry === undefined ? undefined : decodeURIComponent(entry.slice('session='.length)) || undefined;
}

/** @param {string} token @param {string} expiresAt ISO 8601 */
export function saveSession(token, expiresAt) {
  document.cookie = `session=${encodeURIComponent(token)}; path=/; SameSite=Strict; expires=${new Date(expiresAt).toUTCString()}`;
}

export function clearSession() {
  document.cookie = 'session=; path=/; SameSite=Strict; max-age=0';
}

/** @typedef {{ id: string, name: string }} User */

/**
 * The signed-in user, asked of users through the gateway; undefined when signed out (a stale
 * cookie is removed).
 * @returns {Promise<User | undefined>}
 */
export async function signedInUser() {
  const token = sessionToken();
  if (token === undefined) return undefined;
  try {
    const session = await api('users', `/sessions/${encodeURIComponent(token)}`);
    return session.user;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 400)) {
      clearSession();
      return undefined;
    }
    throw error;
  }
}

/** Signs in and keeps the token in the cookie. @param {string} name @param {string} password @returns {Promise<User>} */
export async function signIn(name, password) {
  const session = await api('users', '/sessions', { method: 'POST', body: { name, password } });
  saveSession(session.token, session.expiresAt);
  return session.user;
}

export async function signOut() {
  const token = sessionToken();
  clearSession();
  if (token !== undefined) await api('users', `/sessions/${encodeURIComponent(token)}`, { method: 'DELETE' });
}

// ---- the frame: navigation and footer -------------------------------------------------------

/**
 * Fills the page's `<nav>`: links to the apps, and the signed-in user with a sign-out button.
 * Resolves to the user (undefined when signed out); a failure is shown, and counts as signed out.
 * @param {'home' | 'forum' | 'chat' | 'mail'} current
 * @returns {Promise<User | undefined>}
 */
export async function renderFrame(current) {
  const nav = byTestId('nav');
  const links = [
    ['home', '/', 'Home'],
    ['forum', '/forum/', 'Forum'],
    ['chat', '/chat/', 'Chat'],
    ['mail', '/mail/', 'Mail'],
  ].map(([id, href, label]) => {
    const a = el('a', { href, testid: `nav-${id}` }, label ?? '');
    if (id === current) a.setAttribute('aria-current', 'page');
    return a;
  });
  nav.replaceChildren(...links, el('span', { className: 'spacer' }));
  const page = document.querySelector('meta[name="trellis-served-by"]')?.getAttribute('content');
  if (page && !page.startsWith('__')) noteServedBy('page served by', page);
  /** @type {User | undefined} */
  let user;
  try {
    user = await signedInUser();
  } catch (error) {
    showError(error);
  }
  if (user === undefined) {
    nav.append(el('a', { href: '/#sign-in', testid: 'nav-sign-in' }, 'Sign in'));
  } else {
    const out = el('button', { type: 'button', testid: 'signout' }, 'Sign out');
    out.addEventListener('click', () => {
      signOut().then(
        () => location.assign('/'),
        (error) => showError(error),
      );
    });
    nav.append(el('span', { testid: 'current-user' }, user.name), out);
  }
  return user;
}

/** @type {Map<string, string>} */
const servedBy = new Map();

/**
 * Notes in the footer (`data-testid="served-by"`) which instance did what: "users answered by
 * users-127.0.0.1-4101". The latest answer of each kind is shown, so a reload shows them alternate.
 * @param {string} what
 * @param {string} instance
 */
export function noteServedBy(what, instance) {
  servedBy.set(what, instance);
  const footer = document.querySelector('[data-testid="served-by"]');
  if (footer === null) return;
  footer.replaceChildren(
    ...[...servedBy].map(([label, id]) =>
      el('span', { testid: `served-by-${label.split(' ')[0]}`, className: 'served' }, `${label} ${id}`),
    ),
  );
}

// ---- DOM helpers ----------------------------------------------------------------------------

/**
 * Makes an element; children are nodes or text (never parsed as HTML).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {{ testid?: string, className?: string, href?: string, type?: string, title?: string }} [props]
 * @param {...(Node | string)} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  if (props.testid) node.dataset['testid'] = props.testid;
  if (props.className) node.className = props.className;
  if (props.href && node instanceof HTMLAnchorElement) node.href = props.href;
  if (props.type && node instanceof HTMLButtonElement) node.type = /** @type {'button'} */ (props.type);
  if (props.title) node.title = props.title;
  node.append(...children);
  return node;
}

/**
 * The element with `data-testid="id"`.
 * @param {string} id
 * @returns {HTMLElement}
 * @throws {Error} when the page has none (a bug in the page)
 */
export function byTestId(id) {
  const node = document.querySelector(`[data-testid="${id}"]`);
  if (!(node instanceof HTMLElement)) throw new Error(`the page has no element data-testid="${id}"`);
  return node;
}

/** "3 minutes ago" style time, for lists. @param {string} iso @returns {string} */
export function when(iso) {
  const date = new Date(iso);
  const seconds = Math.round((Date.now() - date.getTime()) / 1000);
  if (seconds < 60) return 'just now';
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return date.toLocaleDateString();
}
