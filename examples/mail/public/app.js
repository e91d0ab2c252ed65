// @ts-check
// The mailbox: list (newest first, paged), open one mail (#/<id>), mark it read.
import { api, byTestId, el, renderFrame, showError, when } from '/assets/page.js';

/** @typedef {{ id: string, from: string, subject: string, body: string, sentAt: string, readAt: string | null }} Mail */

const list = byTestId('mailbox');
const more = byTestId('mailbox-more');
const view = byTestId('mail-view');
/** @type {string | undefined} */
let next;

/** @param {Mail} mail */
function item(mail) {
  const link = el('a', { href: `#/${mail.id}`, testid: 'mail-subject' }, mail.subject);
  const li = el(
    'li',
    { testid: 'mail-item', className: mail.readAt === null ? 'unread' : '' },
    link,
    el(
      'div',
      { className: 'meta' },
      'from ',
      el('span', { testid: 'mail-from' }, mail.from),
      ', ',
      el('span', { testid: 'mail-sent-at' }, when(mail.sentAt)),
    ),
  );
  li.dataset['mailId'] = mail.id;
  return li;
}

/** @param {boolean} fresh start from the newest */
async function loadList(fresh) {
  const query = new URLSearchParams({ limit: '20' });
  if (!fresh && next !== undefined) query.set('before', next);
  const page = await api('mail', `/mailbox?${query}`);
  /** @type {Mail[]} */
  const mails = page.mails;
  if (fresh) list.replaceChildren();
  list.append(...mails.map(item));
  next = page.next ?? undefined;
  more.hidden = next === undefined;
  byTestId('unread-count').textContent = String(page.unread);
  byTestId('mailbox-empty').hidden = list.childElementCount > 0;
}

/** @param {Mail} mail */
function showMail(mail) {
  byTestId('mail-view-subject').textContent = mail.subject;
  byTestId('mail-view-from').textContent = mail.from;
  byTestId('mail-view-sent-at').textContent = new Date(mail.sentAt).toLocaleString();
  byTestId('mail-view-body').textContent = mail.body;
  byTestId('mail-read-at').textContent = mail.readAt === null ? 'unread' : `read ${when(mail.readAt)}`;
  const button = byTestId('mail-mark-read');
  button.hidden = mail.readAt !== null;
  button.onclick = () => {
    api('mail', `/mailbox/${mail.id}/read`, { method: 'POST' }).then(
      (answer) => showMail(answer.mail),
      (error) => showError(error),
    );
  };
}

async function route() {
  const id = /^#\/(\d+)$/.exec(location.hash)?.[1];
  byTestId('mailbox-list').hidden = id !== undefined;
  view.hidden = id === undefined;
  if (id === undefined) await loadList(true);
  else showMail((await api('mail', `/mailbox/${id}`)).mail);
}

const run = (/** @type {() => Promise<void>} */ task) => void task().catch((error) => showError(error));
more.addEventListener('click', () => run(() => loadList(false)));
byTestId('mailbox-refresh').addEventListener('click', () => run(() => loadList(true)));
window.addEventListener('hashchange', () => run(route));

const user = await renderFrame('mail');
if (user === undefined) showError(new Error('Sign in to read your mail (on the home page).'));
else run(route);
