// @ts-check
// The forum page: boards, a board's threads (post one), a thread's replies (reply). Every title,
// body and name is put in the page as text, so HTML in a post shows as typed.
import { api, byTestId, el, noteServedBy, onSubmit, renderFrame, showError, showNotice, when } from '/assets/page.js';

/** @typedef {{ id: string, name: string }} Author */
/** @typedef {{ id: string, boardId: string, title: string, body: string, author: Author, replies: number, createdAt: string, lastPostAt: string }} Thread */
/** @typedef {{ id: string, body: string, author: Author, createdAt: string }} Reply */

const views = ['boards-view', 'board-view', 'thread-view'].map(byTestId);
/** @type {{ id: string, name: string } | undefined} */
let user;
/** @type {{ board?: string, cursor?: string, thread?: string, after?: string }} */
const state = {};

/** @param {string} id */
function showView(id) {
  for (const view of views) view.hidden = view.dataset['testid'] !== id;
}

/** Shows which users instances named the authors of an answer. @param {{ usersServedBy?: string[] }} answer */
function noteUsers(answer) {
  const served = answer.usersServedBy ?? [];
  if (served.length > 0) noteServedBy('users (for the forum) answered by', [...new Set(served)].join(', '));
}

async function showBoards() {
  const { boards } = await api('forum', '/boards');
  byTestId('boards').replaceChildren(
    .../** @type {Array<{ id: string, title: string, description: string, threads: number }>} */ (boards).map((b) => {
      const link = el('a', { href: `#/boards/${b.id}`, testid: 'board-link' }, b.title);
      link.dataset['boardId'] = b.id;
      return el('li', {}, link, el('div', { className: 'meta' }, `${b.description} · ${b.threads} threads`));
    }),
  );
  showView('boards-view');
}

/** @param {Thread} t */
function threadItem(t) {
  const link = el('a', { href: `#/threads/${t.id}`, testid: 'thread-link' }, t.title);
  link.dataset['threadId'] = t.id;
  return el(
    'li',
    {},
    link,
    el('div', { className: 'meta' }, `by ${t.author.name} · ${t.replies} replies · ${when(t.lastPostAt)}`),
  );
}

/** @param {string} board @param {boolean} fresh */
async function showBoard(board, fresh) {
  const query = new URLSearchParams({ limit: '20' });
  if (!fresh && state.cursor) query.set('cursor', state.cursor);
  const answer = await api('forum', `/boards/${encodeURIComponent(board)}/threads?${query}`);
  noteUsers(answer);
  state.board = board;
  state.cursor = answer.next ?? undefined;
  byTestId('board-title').textContent = answer.board.title;
  const list = byTestId('threads');
  if (fresh) list.replaceChildren();
  list.append(.../** @type {Thread[]} */ (answer.threads).map(threadItem));
  byTestId('threads-empty').hidden = list.childElementCount > 0;
  byTestId('threads-more').hidden = state.cursor === undefined;
  byTestId('thread-form').hidden = user === undefined;
  showView('board-view');
}

/** @param {Reply} r */
function replyItem(r) {
  const li = el(
    'li',
    { testid: 'reply' },
    el('div', { className: 'meta' }, el('span', { testid: 'reply-author' }, r.author.name), ` · ${when(r.createdAt)}`),
    el('div', { className: 'text', testid: 'reply-body' }, r.body),
  );
  li.dataset['replyId'] = r.id;
  return li;
}

/** @param {string} id @param {boolean} fresh */
async function showThread(id, fresh) {
  const query = new URLSearchParams({ limit: '50' });
  if (!fresh && state.after) query.set('after', state.after);
  const answer = await api('forum', `/threads/${encodeURIComponent(id)}?${query}`);
  noteUsers(answer);
  /** @type {Thread} */
  const thread = answer.thread;
  state.thread = id;
  state.board = thread.boardId;
  const list = byTestId('replies');
  if (fresh) list.replaceChildren();
  /** @type {Reply[]} */
  const replies = answer.replies;
  list.append(...replies.map(replyItem));
  state.after = replies.length > 0 ? replies[replies.length - 1]?.id : fresh ? undefined : state.after;
  byTestId('replies-more').hidden = answer.next === undefined || answer.next === null;
  byTestId('thread-view-title').textContent = thread.title;
  byTestId('thread-view-author').textContent = thread.author.name;
  byTestId('thread-view-body').textContent = thread.body;
  /** @type {HTMLAnchorElement} */ (byTestId('back-to-board')).href = `#/boards/${thread.boardId}`;
  byTestId('reply-form').hidden = user === undefined;
  showView('thread-view');
}

async function route() {
  showNotice('');
  const [, kind, id] = location.hash.split('/');
  if (kind === 'boards' && id) await showBoard(decodeURIComponent(id), true);
  else if (kind === 'threads' && id) await showThread(decodeURIComponent(id), true);
  else await showBoards();
}

const run = (/** @type {() => Promise<void>} */ task) => void task().catch((error) => showError(error));

onSubmit(/** @type {HTMLFormElement} */ (byTestId('thread-form')), async ({ title = '', body = '' }) => {
  const answer = await api('forum', `/boards/${encodeURIComponent(state.board ?? '')}/threads`, {
    method: 'POST',
    body: { title, body },
  });
  /** @type {HTMLFormElement} */ (byTestId('thread-form')).reset();
  location.hash = `#/threads/${answer.thread.id}`;
});

onSubmit(/** @type {HTMLFormElement} */ (byTestId('reply-form')), async ({ body = '' }) => {
  const answer = await api('forum', `/threads/${encodeURIComponent(state.thread ?? '')}/replies`, {
    method: 'POST',
    body: { body },
  });
  /** @type {HTMLFormElement} */ (byTestId('reply-form')).reset();
  byTestId('replies').append(replyItem(answer.reply));
  showNotice(answer.notified ? 'Replied; the thread’s author was mailed.' : 'Replied.');
});

byTestId('threads-more').addEventListener('click', () => run(() => showBoard(state.board ?? '', false)));
byTestId('replies-more').addEventListener('click', () => run(() => showThread(state.thread ?? '', false)));
window.addEventListener('hashchange', () => run(route));

user = await renderFrame('forum');
byTestId('sign-in-to-post').hidden = user !== undefined;
run(route);
